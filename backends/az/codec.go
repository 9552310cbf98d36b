package az

// This file holds the driver's pure helpers, which send no request: the
// metadata name codec, the listing order fix, checksum passes over bodies,
// and CRC32C combination.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ferryio/ferry/backends"
)

const hexDigits = "0123456789abcdef"

// encodeMetaName turns a user metadata key into an Azure metadata name (a C#
// identifier): a-z, and 0-9 after the first byte, stay; every other byte b
// becomes "_" and two lower-case hex digits.
func encodeMetaName(k string) string {
	var sb strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('_')
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&15])
	}
	return sb.String()
}

// decodeMetaName reverses encodeMetaName on a name as the service returns it
// (in any case). A "_" not followed by two hex digits is kept as it is.
func decodeMetaName(n string) string {
	n = strings.ToLower(n)
	if !strings.Contains(n, "_") {
		return n
	}
	var sb strings.Builder
	for i := 0; i < len(n); i++ {
		if n[i] == '_' && i+2 < len(n) {
			hi, lo := strings.IndexByte(hexDigits, n[i+1]), strings.IndexByte(hexDigits, n[i+2])
			if hi >= 0 && lo >= 0 {
				sb.WriteByte(byte(hi<<4 | lo))
				i += 2
				continue
			}
		}
		sb.WriteByte(n[i])
	}
	return sb.String()
}

// encodeMetadata returns md with encoded names, as the SDK wants it.
func encodeMetadata(md map[string]string) (map[string]*string, error) {
	if len(md) == 0 {
		return nil, nil
	}
	out := make(map[string]*string, len(md))
	for k, v := range md {
		if k == "" {
			return nil, errors.New("empty metadata key")
		}
		out[encodeMetaName(k)] = &v
	}
	return out, nil
}

// decodeMetadata returns the user metadata of a blob, nil when it has none.
func decodeMetadata(md map[string]*string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		if v != nil {
			out[decodeMetaName(k)] = *v
		}
	}
	return out
}

// utf16Weight orders code points as UTF-16 code units do: the
// supplementary planes (surrogate pairs, 0xD800-0xDBFF first) between
// U+D7FF and U+E000.
func utf16Weight(r rune) rune {
	switch {
	case r >= 0x10000:
		return r - 0x10000 + 0xD800
	case r >= 0xE000:
		return r + 0x100000
	}
	return r
}

// compareUTF16 compares two names in the order of their UTF-16 code units,
// the order the service lists in.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			return cmp.Compare(utf16Weight(ra), utf16Weight(rb))
		}
		a, b = a[na:], b[nb:]
	}
	return cmp.Compare(len(a), len(b))
}

// reorder turns a stream of entries sorted by UTF-16 code units (or already
// by bytes) into one sorted by bytes.
//
// The two orders differ only where one name has a character above U+FFFF
// and the other one in U+E000-U+FFFF at the first position they differ. So
// after an entry x arrives, every later entry is at least lowBound(x) in byte
// order, and every pending entry up to that bound can go out. Only names
// with a character above U+FFFF are ever held back.
//
// INVARIANT: pending is sorted by Key in byte order.
type reorder struct {
	pending []backends.Entry
}

// push adds e, which is not less than any entry pushed before in UTF-16 (or
// byte) order, and returns the entries that can now be emitted, in order.
func (r *reorder) push(e backends.Entry) []backends.Entry {
	i, _ := slices.BinarySearchFunc(r.pending, e.Key, func(p backends.Entry, k string) int { return strings.Compare(p.Key, k) })
	r.pending = slices.Insert(r.pending, i, e)
	bound := lowBound(e.Key)
	n := 0
	for n < len(r.pending) && r.pending[n].Key <= bound {
		n++
	}
	out := slices.Clone(r.pending[:n])
	r.pending = slices.Delete(r.pending, 0, n)
	return out
}

// flush returns what is still held, in order, at the end of the stream.
func (r *reorder) flush() []backends.Entry {
	out := r.pending
	r.pending = nil
	return out
}

// lowBound is the least name, in byte order, of any name that follows key in
// UTF-16 order: key itself unless key holds a character above U+FFFF, and
// then key up to that character followed by U+E000.
func lowBound(key string) string {
	for i, r := range key {
		if r >= 0x10000 {
			return key[:i] + "\uE000"
		}
	}
	return key
}

// digest holds the checksums of one pass over a body.
type digest struct {
	md5    []byte
	crc32c []byte   // 4 bytes, big-endian
	blocks [][]byte // MD5 of each block, when the pass was split in blocks
}

// check compares d with the checksums the caller sent; ErrChecksum on a
// mismatch.
func (d digest) check(want backends.Checksums) error {
	if len(want.MD5) != 0 && !bytes.Equal(want.MD5, d.md5) {
		return fmt.Errorf("%w: body has MD5 %x, caller sent %x", backends.ErrChecksum, d.md5, want.MD5)
	}
	if len(want.CRC32C) != 0 && !bytes.Equal(want.CRC32C, d.crc32c) {
		return fmt.Errorf("%w: body has CRC32C %x, caller sent %x", backends.ErrChecksum, d.crc32c, want.CRC32C)
	}
	return nil
}

// hashBody reads size bytes of body from its current position, returns
// their checksums (and, when blockSize > 0, the MD5 of each blockSize
// block) and seeks body back to that position, which it returns. A body
// shorter than size is an error; a cancelled ctx stops the pass.
func hashBody(ctx context.Context, body io.ReadSeeker, size, blockSize int64) (int64, digest, error) {
	start, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, digest{}, err
	}
	whole, crc := md5.New(), crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if blockSize <= 0 {
		blockSize = max(size, 1)
	}
	var d digest
	r := &ctxReader{ctx: ctx, r: body}
	buf := make([]byte, min(size, 256<<10))
	for off := int64(0); off < size; off += blockSize {
		n := min(blockSize, size-off)
		bh := md5.New()
		k, err := io.CopyBuffer(io.MultiWriter(whole, crc, bh), io.LimitReader(r, n), buf)
		if err != nil {
			return 0, digest{}, err
		}
		if k < n {
			return 0, digest{}, fmt.Errorf("body holds %d bytes, not %d: %w", off+k, size, io.ErrUnexpectedEOF)
		}
		d.blocks = append(d.blocks, bh.Sum(nil))
	}
	if _, err := body.Seek(start, io.SeekStart); err != nil {
		return 0, digest{}, err
	}
	d.md5 = whole.Sum(nil)
	d.crc32c = crc.Sum(nil)
	return start, d, nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// crc32cCombine returns the CRC32C of A followed by B from crcA, crcB and
// the length of B (zlib's crc32_combine, for the Castagnoli polynomial).
func crc32cCombine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA
	}
	var even, odd [32]uint32
	odd[0] = crc32.Castagnoli // the operator for one zero bit
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four zero bits
	for {
		gf2Square(&even, &odd) // one more zero byte, then doubling
		if lenB&1 != 0 {
			crcA = gf2Times(&even, crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
		gf2Square(&odd, &even)
		if lenB&1 != 0 {
			crcA = gf2Times(&odd, crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
	}
	return crcA ^ crcB
}

func gf2Times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[32]uint32) {
	for n := range 32 {
		square[n] = gf2Times(mat, mat[n])
	}
}
