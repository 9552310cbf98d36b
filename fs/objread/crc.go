package objread

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ferryio/ferry/backends"
)

// crc32Combine returns the CRC of the concatenation a||b, given crcA, the
// CRC of a, crcB, the CRC of b, and lenB, the length of b in bytes, for the
// reflected polynomial poly (crc32.IEEE or crc32.Castagnoli, as the tables
// of hash/crc32 use them). Cost: O(log lenB) multiplications modulo the
// polynomial, whatever the lengths.
//
// Why it works: with the pre- and post-conditioning that CRC-32 applies,
// crc(a||b) = crc(a)·x^(8·lenB) + crc(b) (mod P): appending lenB bytes
// multiplies the register by x^(8·lenB), and the conditioning terms cancel
// out (the same identity zlib's crc32_combine uses).
func crc32Combine(poly, crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA
	}
	return mulModP(poly, xPow8n(poly, lenB), crcA) ^ crcB
}

// mulModP multiplies a and b modulo the polynomial, in the reflected bit
// order of CRC-32: bit 31 is the coefficient of x^0, bit 0 that of x^31.
func mulModP(poly, a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
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
func xPow8n(poly uint32, n int64) uint32 {
	p := uint32(1) << 31  // x^0
	sq := uint32(1) << 23 // x^8, then x^16, x^32, ...
	for ; n > 0; n >>= 1 {
		if n&1 != 0 {
			p = mulModP(poly, sq, p)
		}
		sq = mulModP(poly, sq, sq)
	}
	return p
}

// crcOf returns the CRC (table tab) of r's bytes [from, to), read through
// buf.
func crcOf(ctx context.Context, r io.ReaderAt, from, to int64, tab *crc32.Table, buf []byte) (uint32, error) {
	var crc uint32
	err := readBack(ctx, r, from, to, buf, func(p []byte) { crc = crc32.Update(crc, tab, p) })
	return crc, err
}

// span is the byte range [from, to) of an object.
type span struct{ from, to int64 }

// piece is a span of an object and the CRC of its bytes.
type piece struct {
	span
	crc uint32
}

// crcCheck verifies an object against one CRC of the whole object
// (CRC32C, or else CRC32), computed from the CRCs of its pieces: each
// fetched part's, hashed in flight, and each kept span's (bytes already in
// the destination), read back. Safe for concurrent use.
type crcCheck struct {
	key  string
	name string // CRC32C or CRC32
	poly uint32
	tab  *crc32.Table
	want []byte
	kept []span

	mu     sync.Mutex
	pieces []piece // GUARDED_BY(mu)
}

// newCRCCheck checks sums' CRC32C, else its CRC32; kept are the spans
// already in the destination, to be read back by readKept.
func newCRCCheck(key string, sums backends.Checksums, kept []span) (*crcCheck, error) {
	c := &crcCheck{key: key, kept: kept, name: CRC32C, poly: crc32.Castagnoli,
		tab: crc32.MakeTable(crc32.Castagnoli), want: sums.CRC32C}
	if len(sums.CRC32C) == 0 {
		c.name, c.poly, c.tab, c.want = CRC32, crc32.IEEE, crc32.IEEETable, sums.CRC32
	}
	if len(c.want) != crc32.Size {
		return nil, fmt.Errorf("objread: store's %s is %d bytes, want %d", c.name, len(c.want), crc32.Size)
	}
	return c, nil
}

// add records the CRC of the object's bytes [from, to).
func (c *crcCheck) add(from, to int64, crc uint32) {
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
		crc, err := crcOf(ctx, r, s.from, s.to, c.tab, buf[:bufSize])
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
	var crc uint32
	var pos int64
	for _, p := range pieces {
		if p.from != pos {
			return fmt.Errorf("objread: bytes [%d, %d) were not hashed", pos, p.from)
		}
		crc = crc32Combine(c.poly, crc, p.crc, p.to-p.from)
		pos = p.to
	}
	if pos != size {
		return fmt.Errorf("objread: bytes [%d, %d) were not hashed", pos, size)
	}
	if got := binary.BigEndian.AppendUint32(nil, crc); !bytes.Equal(got, c.want) {
		return fmt.Errorf("%w: %s expected %x, got %x", backends.ErrChecksum, c.name, c.want, got)
	}
	return nil
}
