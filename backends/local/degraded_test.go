package local

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryio/ferry/backends"
)

// TestDegraded runs the driver as on a filesystem without user extended
// attributes: writes work and verify checksums, versions stay consistent,
// but nothing is recorded and markers are plain directories.
func TestDegraded(t *testing.T) {
	b, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b.attrs = noAttrs{}
	ctx := t.Context()
	data := []byte("degraded but working")
	sums := newHasher()
	sums.Write(data)
	opts := backends.PutOptions{ContentType: "text/plain", Metadata: map[string]string{"mode": "0644"}, Checksums: sums.sums()}

	put, err := b.Put(ctx, "d/obj", bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("Put with right checksums: %v", err)
	}
	st, err := b.Stat(ctx, "d/obj")
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != put.Version || !st.Checksums.IsZero() || st.Metadata != nil || st.ContentType != "" || st.Size != int64(len(data)) {
		t.Errorf("Stat = %+v after Put returned %+v: want the same version, the size, nothing recorded", st, put)
	}
	rc, _, err := b.GetRange(ctx, "d/obj", 0, -1, backends.ReadOptions{IfVersion: st.Version})
	if err != nil {
		t.Fatalf("pinned read: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("read %q, want %q", got, data)
	}

	bad := opts
	bad.Checksums = backends.Checksums{MD5: make([]byte, 16)}
	if _, err := b.Put(ctx, "d/obj", strings.NewReader("other"), 5, bad); !errors.Is(err, backends.ErrChecksum) {
		t.Errorf("Put with a wrong MD5 = %v, want ErrChecksum", err)
	}
	if _, err := b.Put(ctx, "d/obj", strings.NewReader("other"), 5, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if st2, err := b.Stat(ctx, "d/obj"); err != nil || st2.Version == st.Version {
		t.Errorf("after replacing: Stat = %+v, %v; want a new version", st2, err)
	}

	// A marker is a plain directory: an implicit prefix, not an object.
	if _, err := b.Put(ctx, "m/", strings.NewReader(""), 0, backends.PutOptions{}); err != nil {
		t.Fatalf("Put(m/): %v", err)
	}
	if fi, err := os.Stat(filepath.Join(b.Root(), "m")); err != nil || !fi.IsDir() {
		t.Errorf("Put(m/) made no directory: %v", err)
	}
	if _, err := b.Stat(ctx, "m/"); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("Stat(m/) = %v, want ErrNotExist in degraded mode", err)
	}
	var listed []string
	for e, err := range b.ListDir(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, e.Key)
	}
	if strings.Join(listed, ",") != "d/,m/" {
		t.Errorf("ListDir = %q, want [d/ m/]", listed)
	}

	// Multipart works; parts carry an ETag but no CRC32C.
	u, err := b.CreateUpload(ctx, "big", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.UploadPart(ctx, u, 1, strings.NewReader("part one"), 8)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := b.ListParts(ctx, u)
	if err != nil || len(parts) != 1 || parts[0].ETag != p.ETag || parts[0].CRC32C != nil {
		t.Fatalf("ListParts = %+v, %v; want one part with ETag %q and no CRC32C", parts, err, p.ETag)
	}
	if _, err := b.CompleteUpload(ctx, u, parts); err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
}
