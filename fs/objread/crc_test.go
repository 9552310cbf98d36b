package objread

import "testing"

// The algorithms' check values: the CRC of "123456789" as the catalogue
// of CRC parameters gives it (CRC-32C, CRC-32/ISO-HDLC, CRC-64/NVME).
func TestCRCCheckValues(t *testing.T) {
	for _, c := range []struct {
		alg  crcAlg
		want uint64
	}{
		{crc32cAlg(), 0xe3069283},
		{crc32Alg(), 0xcbf43926},
		{crc64NVMEAlg(), 0xae8b14860a799888},
	} {
		if got := c.alg.update(0, []byte("123456789")); got != c.want {
			t.Errorf("%s(\"123456789\") = %x, want %x", c.alg.name, got, c.want)
		}
	}
}

// Combining the CRCs of the pieces of some data, cut anywhere (empty
// pieces, single bytes, odd sizes), gives the CRC of the whole, for every
// algorithm.
func TestCRCCombine(t *testing.T) {
	data := randomBytes(1<<20+13, 40)
	for _, alg := range []crcAlg{crc32Alg(), crc32cAlg(), crc64NVMEAlg()} {
		whole := alg.update(0, data)
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
			var crc uint64
			from := 0
			for _, to := range append(cuts, len(data)) {
				crc = crcCombine(alg.width, alg.poly, crc, alg.update(0, data[from:to]), int64(to-from))
				from = to
			}
			if crc != whole {
				t.Errorf("%s, cuts %v: combined %x, whole %x", alg.name, cuts, crc, whole)
			}
		}
		// Associativity over a large length: crc(a||b||c) combined as
		// a||(b||c), where b||c is 64 MiB of zeros.
		zeros := make([]byte, 64<<20)
		a, bc := data[:1000], alg.update(0, zeros)
		want := alg.update(alg.update(0, a), zeros)
		if got := crcCombine(alg.width, alg.poly, alg.update(0, a), bc, int64(len(zeros))); got != want {
			t.Errorf("%s, 64 MiB second piece: %x, want %x", alg.name, got, want)
		}
	}
}

func BenchmarkCRC(b *testing.B) {
	buf := randomBytes(128<<10, 42)
	for _, alg := range []crcAlg{crc32cAlg(), crc32Alg(), crc64NVMEAlg()} {
		b.Run(alg.name, func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			var crc uint64
			for b.Loop() {
				crc = alg.update(crc, buf)
			}
		})
	}

}
