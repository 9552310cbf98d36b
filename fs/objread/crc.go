package objread

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ferryio/ferry/backends"
)

// crcAlg is one of the CRCs stores keep of whole objects: CRC32C, CRC32
// (IEEE) and CRC64NVME, all reflected, with all-ones initial value and
// final XOR, and stored big-endian.
type crcAlg struct {
	name  string
	width uint   // bits: 32 or 64
	poly  uint64 // reflected, as hash/crc32 and hash/crc64 take it
	// update adds p to crc as hash/crc32.Update and hash/crc64.Update do.
	update func(crc uint64, p []byte) uint64
}

// NVMePoly is the CRC-64/NVME polynomial (0xad93d23594c93659) in the
// reflected form hash/crc64.MakeTable takes: the full-object checksum
// that S3 keeps for every object uploaded without another one.
const NVMePoly = 0x9a6c9329ac4bc9b5

// crc32cAlg, crc32Alg and crc64NVMEAlg are the algorithms, in the order
// preferCRC prefers them.
func crc32cAlg() crcAlg {
	tab := crc32.MakeTable(crc32.Castagnoli) // cached by hash/crc32
	return crcAlg{name: CRC32C, width: 32, poly: crc32.Castagnoli,
		update: func(crc uint64, p []byte) uint64 { return uint64(crc32.Update(uint32(crc), tab, p)) }}
}

func crc32Alg() crcAlg {
	return crcAlg{name: CRC32, width: 32, poly: crc32.IEEE,
		update: func(crc uint64, p []byte) uint64 { return uint64(crc32.Update(uint32(crc), crc32.IEEETable, p)) }}
}

func crc64NVMEAlg() crcAlg {
	tab := crc64.MakeTable(NVMePoly)
	return crcAlg{name: CRC64NVME, width: 64, poly: NVMePoly,
		update: func(crc uint64, p []byte) uint64 { return crc64.Update(crc, tab, p) }}
}

// crcCombine returns the CRC of the concatenation a||b, given crcA, the
// CRC of a, crcB, the CRC of b, and lenB, the length of b in bytes, for a
// CRC of width bits with the reflected polynomial poly (crc32.IEEE,
// crc32.Castagnoli, NVMePoly). Cost: O(log lenB) multiplications modulo
// the polynomial, whatever the lengths.
//
// Why it works: with the pre- and post-conditioning these CRCs apply,
// crc(a||b) = crc(a)·x^(8·lenB) + crc(b) (mod P): appending lenB bytes
// multiplies the register by x^(8·lenB), and the conditioning terms cancel
// out (the same identity zlib's crc32_combine uses).
func crcCombine(width uint, poly, crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	return mulModP(width, poly, xPow8n(width, poly, lenB), crcA) ^ crcB
}

// mulModP multiplies a and b modulo the polynomial, in the reflected bit
// order of the CRC: bit width-1 is the coefficient of x^0, bit 0 that of
// x^(width-1).
func mulModP(width uint, poly, a, b uint64) uint64 {
	var p uint64
	for m := uint64(1) << (width - 1); m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		// b *= x
		if b&1 != 0 {
			b = b>>1 ^ poly
		} else {
			b >>= 1
		}
	}
	return p
}

// xPow8n returns x^(8n) modulo the polynomial (reflected), by squaring.
func xPow8n(width uint, poly uint64, n int64) uint64 {
	p := uint64(1) << (width - 1)  // x^0
	sq := uint64(1) << (width - 9) // x^8, then x^16, x^32, ...
	for ; n > 0; n >>= 1 {
		if n&1 != 0 {
			p = mulModP(width, poly, sq, p)
		}
		sq = mulModP(width, poly, sq, sq)
	}
	return p
}

// crcOf returns the CRC (alg) of r's bytes [from, to), read through buf.
func crcOf(ctx context.Context, r io.ReaderAt, from, to int64, alg crcAlg, buf []byte) (uint64, error) {
	var crc uint64
	err := readBack(ctx, r, from, to, buf, func(p []byte) { crc = alg.update(crc, p) })
	return crc, err
}

// span is the byte range [from, to) of an object.
type span struct{ from, to int64 }

// piece is a span of an object and the CRC of its bytes.
type piece struct {
	span
	crc uint64
}

// crcCheck verifies an object against one CRC of the whole object
// (CRC32C, else CRC32, else CRC64NVME), computed from the CRCs of its
// pieces: each
// fetched part's, hashed in flight, and each kept span's (bytes already in
// the destination), read back. Safe for concurrent use.
type crcCheck struct {
	key  string
	alg  crcAlg
	want []byte
	kept []span

	mu     sync.Mutex
	pieces []piece // GUARDED_BY(mu)
}

// newCRCCheck checks sums' CRC32C, else its CRC32, else its CRC64NVME
// (one must be set); kept are the spans already in the destination, to be
// read back by readKept.
func newCRCCheck(key string, sums backends.Checksums, kept []span) (*crcCheck, error) {
	c := &crcCheck{key: key, kept: kept}
	switch {
	case len(sums.CRC32C) > 0:
		c.alg, c.want = crc32cAlg(), sums.CRC32C
	case len(sums.CRC32) > 0:
		c.alg, c.want = crc32Alg(), sums.CRC32
	default:
		c.alg, c.want = crc64NVMEAlg(), sums.CRC64NVME
	}
	if n := int(c.alg.width / 8); len(c.want) != n {
		return nil, fmt.Errorf("objread: store's %s is %d bytes, want %d", c.alg.name, len(c.want), n)
	}
	return c, nil
}

// add records the CRC of the object's bytes [from, to).
func (c *crcCheck) add(from, to int64, crc uint64) {
	c.mu.Lock()
	c.pieces = append(c.pieces, piece{span{from, to}, crc})
	c.mu.Unlock()
}

// readKept reads back and hashes the kept spans through r, holding a
// buffer of bufs while it reads, and counts the bytes in readBack.
func (c *crcCheck) readKept(ctx context.Context, r io.ReaderAt, bufs *Buffers, bufSize int, readBack *atomic.Int64) error {
	buf := bufs.get()
	defer bufs.put(buf)
	for _, s := range c.kept {
		crc, err := crcOf(ctx, r, s.from, s.to, c.alg, buf[:bufSize])
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("verify %q: %w", c.key, err)
		}
		readBack.Add(s.to - s.from)
		c.add(s.from, s.to, crc)
	}
	return nil
}

// check combines the pieces, which must cover [0, size) exactly, in order
// and compares the result with the store's CRC. A mismatch wraps
// backends.ErrChecksum.
func (c *crcCheck) check(size int64) error {
	c.mu.Lock()
	pieces := slices.Clone(c.pieces)
	c.mu.Unlock()
	slices.SortFunc(pieces, func(a, b piece) int { return cmp.Compare(a.from, b.from) })
	var crc uint64
	var pos int64
	for _, p := range pieces {
		if p.from != pos {
			return fmt.Errorf("objread: bytes [%d, %d) were not hashed", pos, p.from)
		}
		crc = crcCombine(c.alg.width, c.alg.poly, crc, p.crc, p.to-p.from)
		pos = p.to
	}
	if pos != size {
		return fmt.Errorf("objread: bytes [%d, %d) were not hashed", pos, size)
	}
	got := binary.BigEndian.AppendUint64(nil, crc)[8-c.alg.width/8:]
	if !bytes.Equal(got, c.want) {
		return fmt.Errorf("%w: %s expected %x, got %x", backends.ErrChecksum, c.alg.name, c.want, got)
	}
	return nil
}
