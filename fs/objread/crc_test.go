package objread

import (
	"hash/crc32"
	"testing"
)

// Combining the CRCs of the pieces of some data, cut anywhere (empty
// pieces, single bytes, odd sizes), gives the CRC of the whole, for both
// polynomials.
func TestCRC32Combine(t *testing.T) {
	data := randomBytes(1<<20+13, 40)
	for _, poly := range []uint32{crc32.IEEE, crc32.Castagnoli} {
		tab := crc32.MakeTable(poly)
		whole := crc32.Checksum(data, tab)
		for _, cuts := range [][]int{
			{},
			{0},
			{1},
			{len(data) - 1},
			{len(data)},
			{7, 8, 9, 4096, 4097},
			{65536 + 7, 3 * 65536, 3*65536 + 1, 1 << 20},
			{100, 100, 100_003, 777_777},
		} {
			var crc uint32
			from := 0
			for _, to := range append(cuts, len(data)) {
				crc = crc32Combine(poly, crc, crc32.Checksum(data[from:to], tab), int64(to-from))
				from = to
			}
			if crc != whole {
				t.Errorf("poly %08x, cuts %v: combined %08x, whole %08x", poly, cuts, crc, whole)
			}
		}
		// Associativity over a large length: crc(a||b||c) combined as
		// a||(b||c), where b||c is 64 MiB of zeros.
		zeros := make([]byte, 64<<20)
		a, bc := data[:1000], crc32.Checksum(zeros, tab)
		want := crc32.Update(crc32.Checksum(a, tab), tab, zeros)
		if got := crc32Combine(poly, crc32.Checksum(a, tab), bc, int64(len(zeros))); got != want {
			t.Errorf("poly %08x, 64 MiB second piece: %08x, want %08x", poly, got, want)
		}
	}
}
