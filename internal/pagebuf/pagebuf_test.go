package pagebuf

import "testing"

func TestAlloc(t *testing.T) {
	for _, n := range []int{0, 1, 100, Size, Size + 1, 64 << 10, 1<<20 + 3} {
		for range 8 { // small sizes land anywhere: a few tries cover both branches
			p := Alloc(n)
			if len(p) != n || cap(p) != n || !Aligned(p) {
				t.Fatalf("Alloc(%d): len %d cap %d aligned %v", n, len(p), cap(p), Aligned(p))
			}
			for i, b := range p {
				if b != 0 {
					t.Fatalf("Alloc(%d)[%d] = %d, want zero", n, i, b)
				}
			}
		}
	}
	if p := Alloc(2 * Size); Aligned(p[1:]) {
		t.Error("Aligned of an offset slice is true")
	}
}
