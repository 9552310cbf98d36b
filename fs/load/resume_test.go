package load

import (
	"os"
	"slices"
	"sync"
	"testing"
)

func TestJournalWriterRecordsEveryPart(t *testing.T) {
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	f, err := root.Create("obj.part")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newJournalWriter(root, "obj.json", f, partJournal{Key: "k", Size: 100 * 10, PartSize: 10})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if err := w.partDone(i); err != nil {
				t.Error(err)
			}
			// Once partDone returns, the journal on disk holds part i.
			if j := loadJournal(root, "obj.json"); j == nil || !slices.Contains(j.Done, i) {
				t.Errorf("part %d returned but is not in the journal", i)
			}
		})
	}
	wg.Wait()
	j := loadJournal(root, "obj.json")
	if j == nil || len(j.Done) != 100 || !slices.IsSorted(j.Done) {
		t.Fatalf("journal %+v", j)
	}
}

func TestCoveredAcrossPartSizes(t *testing.T) {
	// Old parts of 4 bytes over a 22-byte object: 0-3 done, 4 missing, 5 done.
	j := &partJournal{Size: 22, PartSize: 4, Done: []int{5, 0, 1, 2, 3}}
	covered := j.covered(22, 8)
	for i, want := range []bool{true, true, false} { // [0,8) [8,16) [16,22)
		if got := covered(i); got != want {
			t.Errorf("new part %d: covered %v, want %v", i, got, want)
		}
	}
	if !j.covered(22, 2)(10) || j.covered(22, 2)(8) {
		t.Error("smaller new parts: [20,22) is covered, [16,18) is not")
	}
}
