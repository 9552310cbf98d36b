package objread

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ferryio/ferry/backends"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Known vectors: CRC-32C (Castagnoli) of "123456789" is e3069283, sent
// big-endian; MD5 of it is 25f9e794323b453885f5181f1b624d0b.
func TestVerifyKnownVectors(t *testing.T) {
	ctx := context.Background()
	r := strings.NewReader("123456789")
	crc := unhex(t, "e3069283")
	md := unhex(t, "25f9e794323b453885f5181f1b624d0b")
	for _, sums := range []backends.Checksums{{CRC32C: crc}, {MD5: md}, {MD5: md, CRC32C: crc}} {
		if err := Verify(ctx, r, 9, sums); err != nil {
			t.Errorf("Verify(%x, %x): %v", sums.MD5, sums.CRC32C, err)
		}
	}
	// Little-endian CRC, IEEE CRC, a changed byte: all mismatches.
	for _, sums := range []backends.Checksums{
		{CRC32C: unhex(t, "839206e3")},
		{CRC32C: unhex(t, "cbf43926")},
		{MD5: md, CRC32C: unhex(t, "e3069284")},
	} {
		err := Verify(ctx, r, 9, sums)
		if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), "expected "+hex.EncodeToString(sums.CRC32C)+", got e3069283") {
			t.Errorf("Verify(crc %x) = %v; want ErrChecksum naming expected and got", sums.CRC32C, err)
		}
	}
	// Both wrong: both reported.
	err := Verify(ctx, strings.NewReader("123456780"), 9, backends.Checksums{MD5: md, CRC32C: crc})
	if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), MD5) || !strings.Contains(err.Error(), CRC32C) {
		t.Errorf("both wrong: %v", err)
	}
}

func TestVerifyErrors(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(3<<20+1, 30) // several read chunks
	sums := sumsOf(data)
	if err := Verify(ctx, bytes.NewReader(data), int64(len(data)), sums); err != nil {
		t.Errorf("multi-chunk: %v", err)
	}
	if err := Verify(ctx, bytes.NewReader(data), int64(len(data)), backends.Checksums{}); !errors.Is(err, ErrNoChecksum) {
		t.Errorf("no checksum: %v", err)
	}
	if err := Verify(ctx, bytes.NewReader(data), int64(len(data)), backends.Checksums{CRC32C: []byte{1, 2, 3}}); err == nil || errors.Is(err, backends.ErrChecksum) {
		t.Errorf("3-byte crc32c: %v; want a malformed-checksum error", err)
	}
	if err := Verify(ctx, bytes.NewReader(data[:100]), int64(len(data)), sums); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short reader: %v", err)
	}
	if err := Verify(ctx, bytes.NewReader(nil), 0, sumsOf(nil)); err != nil {
		t.Errorf("empty: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Verify(cctx, bytes.NewReader(data), int64(len(data)), sums); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestVerifyCRC32IEEE: S3's CRC32 (IEEE) full-object checksum, "123456789"
// -> cbf43926, and preferCRC picking the cheapest known checksum.
func TestVerifyCRC32IEEE(t *testing.T) {
	ctx := context.Background()
	ieee := unhex(t, "cbf43926")
	if err := Verify(ctx, strings.NewReader("123456789"), 9, backends.Checksums{CRC32: ieee}); err != nil {
		t.Errorf("Verify(crc32 %x): %v", ieee, err)
	}
	err := Verify(ctx, strings.NewReader("123456780"), 9, backends.Checksums{CRC32: ieee})
	if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), CRC32+" expected cbf43926") {
		t.Errorf("changed byte: %v; want ErrChecksum naming crc32", err)
	}
	md := unhex(t, "25f9e794323b453885f5181f1b624d0b")
	crc := unhex(t, "e3069283")
	nvme := unhex(t, "ae8b14860a799888")
	for _, c := range []struct{ in, want backends.Checksums }{
		{backends.Checksums{MD5: md, CRC32: ieee, CRC32C: crc, CRC64NVME: nvme}, backends.Checksums{CRC32C: crc}},
		{backends.Checksums{MD5: md, CRC32: ieee, CRC64NVME: nvme}, backends.Checksums{CRC32: ieee}},
		{backends.Checksums{MD5: md, CRC64NVME: nvme}, backends.Checksums{CRC64NVME: nvme}},
		{backends.Checksums{MD5: md}, backends.Checksums{MD5: md}},
	} {
		got := preferCRC(c.in)
		if !bytes.Equal(got.CRC32C, c.want.CRC32C) || !bytes.Equal(got.CRC32, c.want.CRC32) || !bytes.Equal(got.MD5, c.want.MD5) ||
			!bytes.Equal(got.CRC64NVME, c.want.CRC64NVME) {
			t.Errorf("preferCRC(%+v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

// TestVerifyCRC64NVME: S3's CRC64NVME full-object checksum, "123456789" ->
// ae8b14860a799888 (the catalogue's check value), alone and with others;
// a wrong or malformed one.
func TestVerifyCRC64NVME(t *testing.T) {
	ctx := context.Background()
	nvme := unhex(t, "ae8b14860a799888")
	for _, sums := range []backends.Checksums{{CRC64NVME: nvme}, {CRC64NVME: nvme, MD5: unhex(t, "25f9e794323b453885f5181f1b624d0b")}} {
		if err := Verify(ctx, strings.NewReader("123456789"), 9, sums); err != nil {
			t.Errorf("Verify(%+v): %v", sums, err)
		}
	}
	err := Verify(ctx, strings.NewReader("123456780"), 9, backends.Checksums{CRC64NVME: nvme})
	if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), CRC64NVME+" expected ae8b14860a799888") {
		t.Errorf("changed byte: %v; want ErrChecksum naming crc64nvme", err)
	}
	err = Verify(ctx, strings.NewReader("123456789"), 9, backends.Checksums{CRC64NVME: nvme[:4]})
	if err == nil || errors.Is(err, backends.ErrChecksum) {
		t.Errorf("4-byte crc64nvme: %v; want a malformed-checksum error", err)
	}
}
