package objread

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ferryio/ferry/backends"
)

// ErrNoChecksum is returned by Verify when the store gave no checksum to
// compare with: the bytes are unverified, which callers should say (for
// example "unverified: no checksum from store") rather than hide.
var ErrNoChecksum = errors.New("no checksum from store")

// Checksum names, as used in Result.Checked and in error messages.
const (
	MD5       = "md5"
	CRC32C    = "crc32c"
	CRC32     = "crc32"
	CRC64NVME = "crc64nvme"
)

// Verify reads the bytes [0, size) of r sequentially and compares their MD5,
// CRC32C (Castagnoli, big-endian), CRC32 (IEEE) and CRC64NVME with those
// set in sums; every one set is checked. A mismatch returns an error wrapping
// backends.ErrChecksum that names the checksum, the expected and the
// computed value. No checksum in sums returns ErrNoChecksum; a malformed one
// (wrong length) an error saying so. r shorter than size is an error
// wrapping io.ErrUnexpectedEOF. ctx is checked between reads of
// DefaultBufferSize. Cost:
// one sequential read of size bytes, and MD5 (~0.5-1 GB/s per core), the
// CRC-32s (several GB/s with SSE4.2/ARMv8 CRC) and/or CRC64NVME (1-2 GB/s)
// over them.
func Verify(ctx context.Context, r io.ReaderAt, size int64, sums backends.Checksums) error {
	if sums.IsZero() {
		return ErrNoChecksum
	}
	s, err := newSummer(sums)
	if err != nil {
		return err
	}
	buf := make([]byte, min(int64(DefaultBufferSize), max(size, 1)))
	if err := s.readFrom(ctx, r, 0, size, buf); err != nil {
		return err
	}
	return s.check()
}

// summer hashes a byte stream with the checksums it is to be compared with.
type summer struct {
	want  backends.Checksums
	md5   hash.Hash   // nil when MD5 is not checked
	crc   hash.Hash32 // nil when CRC32C is not checked
	crc32 hash.Hash32 // nil when CRC32 (IEEE) is not checked
	nvme  hash.Hash64 // nil when CRC64NVME is not checked
}

func newSummer(want backends.Checksums) (*summer, error) {
	s := &summer{want: want}
	if n := len(want.MD5); n > 0 {
		if n != md5.Size {
			return nil, fmt.Errorf("objread: store's md5 is %d bytes, want %d", n, md5.Size)
		}
		s.md5 = md5.New()
	}
	if n := len(want.CRC32C); n > 0 {
		if n != crc32.Size {
			return nil, fmt.Errorf("objread: store's crc32c is %d bytes, want %d", n, crc32.Size)
		}
		s.crc = crc32.New(crc32.MakeTable(crc32.Castagnoli))
	}
	if n := len(want.CRC32); n > 0 {
		if n != crc32.Size {
			return nil, fmt.Errorf("objread: store's crc32 is %d bytes, want %d", n, crc32.Size)
		}
		s.crc32 = crc32.NewIEEE()
	}
	if n := len(want.CRC64NVME); n > 0 {
		if n != crc64.Size {
			return nil, fmt.Errorf("objread: store's crc64nvme is %d bytes, want %d", n, crc64.Size)
		}
		s.nvme = crc64.New(crc64.MakeTable(NVMePoly))
	}
	return s, nil
}

// names lists the checksums the summer checks.
func (s *summer) names() []string { return Names(s.want) }

// Names lists the names of the checksums set in sums, CRCs first (the
// order of Result.Checked).
func Names(sums backends.Checksums) []string {
	var n []string
	for _, c := range []struct {
		name string
		sum  []byte
	}{{CRC32C, sums.CRC32C}, {CRC32, sums.CRC32}, {CRC64NVME, sums.CRC64NVME}, {MD5, sums.MD5}} {
		if len(c.sum) > 0 {
			n = append(n, c.name)
		}
	}
	return n
}

func (s *summer) write(p []byte) {
	if s.md5 != nil {
		s.md5.Write(p)
	}
	if s.crc != nil {
		s.crc.Write(p)
	}
	if s.crc32 != nil {
		s.crc32.Write(p)
	}
	if s.nvme != nil {
		s.nvme.Write(p)
	}
}

// readFrom hashes r's bytes [from, to) through buf.
func (s *summer) readFrom(ctx context.Context, r io.ReaderAt, from, to int64, buf []byte) error {
	return readBack(ctx, r, from, to, buf, s.write)
}

// readBack reads r's bytes [from, to) in order through buf and hands each
// chunk to fn. ctx is checked before each read.
func readBack(ctx context.Context, r io.ReaderAt, from, to int64, buf []byte, fn func([]byte)) error {
	for pos := from; pos < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := buf[:min(int64(len(buf)), to-pos)]
		n, err := r.ReadAt(chunk, pos)
		fn(chunk[:n])
		pos += int64(n)
		if n < len(chunk) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("objread: reading back at offset %d of %d: %w", pos, to, err)
		}
	}
	return nil
}

// check compares the sums of everything written with the expected ones.
func (s *summer) check() error {
	var errs []error
	if s.crc != nil {
		if got := s.crc.Sum(nil); !bytes.Equal(got, s.want.CRC32C) {
			errs = append(errs, fmt.Errorf("%w: %s expected %x, got %x", backends.ErrChecksum, CRC32C, s.want.CRC32C, got))
		}
	}
	if s.crc32 != nil {
		if got := s.crc32.Sum(nil); !bytes.Equal(got, s.want.CRC32) {
			errs = append(errs, fmt.Errorf("%w: %s expected %x, got %x", backends.ErrChecksum, CRC32, s.want.CRC32, got))
		}
	}
	if s.nvme != nil {
		if got := s.nvme.Sum(nil); !bytes.Equal(got, s.want.CRC64NVME) {
			errs = append(errs, fmt.Errorf("%w: %s expected %x, got %x", backends.ErrChecksum, CRC64NVME, s.want.CRC64NVME, got))
		}
	}
	if s.md5 != nil {
		if got := s.md5.Sum(nil); !bytes.Equal(got, s.want.MD5) {
			errs = append(errs, fmt.Errorf("%w: %s expected %x, got %x", backends.ErrChecksum, MD5, s.want.MD5, got))
		}
	}
	return errors.Join(errs...)
}
