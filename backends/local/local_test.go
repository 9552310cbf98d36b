package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/backendtest"
	"github.com/ferryio/ferry/backends/local"
)

func newBackend(t *testing.T) *local.Backend {
	t.Helper()
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backends.Backend { return newBackend(t) }, backendtest.Caps{
		RawKeys: false,
		Reopen: func(t *testing.T, b backends.Backend) backends.Backend {
			fresh, err := local.New(b.(*local.Backend).Root())
			if err != nil {
				t.Fatal(err)
			}
			return fresh
		},
	})
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for root, says := range map[string]string{filepath.Join(dir, "missing"): "does not exist (create it first", file: "is not a directory"} {
		if _, err := local.New(root); !errors.Is(err, backends.ErrNoBucket) || !strings.Contains(err.Error(), says) {
			t.Errorf("New(%s) = %v, want ErrNoBucket saying %q", root, err, says)
		}
	}
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "file://" + dir; b.String() != want {
		t.Errorf("String() = %q, want %q", b.String(), want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("New wrote into the root: %d entries, want only the file", len(entries))
	}
}

func put(t *testing.T, b backends.Backend, key, data string) {
	t.Helper()
	if _, err := b.Put(t.Context(), key, strings.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func keys(t *testing.T, seq func(func(backends.Entry, error) bool)) []string {
	t.Helper()
	var out []string
	for e, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		if e.IsPrefix {
			out = append(out, "P:"+e.Key)
		} else {
			out = append(out, e.Key)
		}
	}
	return out
}

// TestKeysStayInsideRoot tries keys that would name files outside the root
// and checks that they are refused and nothing appears anywhere.
func TestKeysStayInsideRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{
		"../escape", "a/../../escape", "/abs", "../", "a/..", ".ferry-tmp/x", ".ferry-tmp/uploads/",
		"..", ".", "./x", "a/./b",
	} {
		_, err := b.Put(t.Context(), key, strings.NewReader(""), 0, backends.PutOptions{})
		if !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		} else if !strings.Contains(err.Error(), key) {
			t.Errorf("Put(%q) error %q does not name the key", key, err)
		}
		if _, err := b.CreateUpload(t.Context(), key, backends.PutOptions{}); !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("CreateUpload(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if got := dirNames(t, parent); !slices.Equal(got, []string{"root"}) {
		t.Errorf("parent of the root holds %q, want only root", got)
	}
	if got := dirNames(t, root); len(got) != 0 {
		t.Errorf("root holds %q, want nothing", got)
	}
}

// TestInvalidKeys: every key a filesystem cannot hold is refused by every
// method, with a message that names the key and says why.
func TestInvalidKeys(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	tests := []struct{ key, why string }{
		{"", "empty"},
		{"nul\x00byte", "NUL"},
		{"/abs", `starting with "/"`},
		{"/", `starting with "/"`},
		{"a//b", "empty path segment"},
		{"a/b//", "empty path segment"},
		{"..", `"..`},
		{"a/../b", `"..`},
		{"a/..", `"..`},
		{"./a", `"."`},
		{"a/.", `"."`},
		{"a/" + strings.Repeat("x", 256) + "/b", "256 bytes"},
		{strings.Repeat("y", 1000), "1000 bytes"},
		{".ferry-tmp/uploads/x", "staging"},
	}
	for _, tc := range tests {
		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, backends.ErrInvalidKey) {
				t.Errorf("%s(%q) = %v, want ErrInvalidKey", what, tc.key, err)
			} else if !strings.Contains(err.Error(), tc.why) || (tc.key != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.key))) {
				t.Errorf("%s(%q) error %q does not name the key and say %q", what, tc.key, err, tc.why)
			}
		}
		_, err := b.Put(ctx, tc.key, strings.NewReader("x"), 1, backends.PutOptions{})
		check("Put", err)
		_, err = b.Stat(ctx, tc.key)
		check("Stat", err)
		_, _, err = b.GetRange(ctx, tc.key, 0, -1, backends.ReadOptions{})
		check("GetRange", err)
		check("Delete", b.Delete(ctx, tc.key))
		_, err = b.CreateUpload(ctx, tc.key, backends.PutOptions{})
		check("CreateUpload", err)
	}
	if got := dirNames(t, b.Root()); len(got) != 0 {
		t.Errorf("root holds %q after refused keys, want nothing", got)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestFileDirectoryConflicts: a key cannot be both a file and a directory.
func TestFileDirectoryConflicts(t *testing.T) {
	b := newBackend(t)
	put(t, b, "a", "file a")
	put(t, b, "d/x", "in d")
	tests := []struct{ key, why string }{
		{"a/b", "a is a file"},
		{"a/b/c", "a is a file"},
		{"a/", "a is a file"},
		{"d", "d is a directory"},
	}
	for _, tc := range tests {
		_, err := b.Put(t.Context(), tc.key, strings.NewReader(""), 0, backends.PutOptions{})
		if !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("Put(%q) (%s) = %v, want ErrInvalidKey", tc.key, tc.why, err)
		}
	}
	if _, err := b.CreateUpload(t.Context(), "a/b", backends.PutOptions{}); !errors.Is(err, backends.ErrInvalidKey) {
		t.Errorf("CreateUpload(a/b) = %v, want ErrInvalidKey", err)
	}
	if got := keys(t, b.List(t.Context(), "")); !slices.Equal(got, []string{"a", "d/x"}) {
		t.Errorf("List = %q, want [a d/x]", got)
	}
}

// TestNoTempFilesLeft makes puts and uploads fail in every way and checks
// that the staging directory holds nothing afterwards.
func TestNoTempFilesLeft(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	put(t, b, "ok", "fine") // makes the staging directory
	failures := map[string]func() error{
		"wrong checksum": func() error {
			_, err := b.Put(ctx, "k", strings.NewReader("abc"), 3,
				backends.PutOptions{Checksums: backends.Checksums{CRC32C: []byte{1, 2, 3, 4}}})
			return err
		},
		"short body": func() error {
			_, err := b.Put(ctx, "k", strings.NewReader("abc"), 10, backends.PutOptions{})
			return err
		},
		"body read error": func() error {
			body := iotest.ErrReader(errors.New("disk on fire"))
			_, err := b.Put(ctx, "k", readSeeker{body}, 10, backends.PutOptions{})
			return err
		},
		"cancelled": func() error {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := b.Put(ctx, "k", strings.NewReader("abc"), 3, backends.PutOptions{})
			return err
		},
		"conflict": func() error {
			_, err := b.Put(ctx, "ok/below", strings.NewReader("abc"), 3, backends.PutOptions{})
			return err
		},
		"multipart wrong checksum": func() error {
			u, err := b.CreateUpload(ctx, "mp", backends.PutOptions{Checksums: backends.Checksums{MD5: make([]byte, 16)}})
			if err != nil {
				return nil
			}
			p, err := b.UploadPart(ctx, u, 1, strings.NewReader("part"), 4)
			if err != nil {
				return nil
			}
			if _, err := b.CompleteUpload(ctx, u, []backends.Part{p}); err != nil {
				b.AbortUpload(ctx, u)
				return err
			}
			return nil
		},
	}
	for name, fail := range failures {
		if err := fail(); err == nil {
			t.Errorf("%s: succeeded, want an error", name)
		}
	}
	staging := filepath.Join(b.Root(), ".ferry-tmp")
	filepath.WalkDir(staging, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
	if got := keys(t, b.List(ctx, "")); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("List = %q, want [ok]", got)
	}
}

// readSeeker gives a reader a Seek that is never used.
type readSeeker struct {
	r interface{ Read([]byte) (int, error) }
}

func (r readSeeker) Read(p []byte) (int, error)     { return r.r.Read(p) }
func (r readSeeker) Seek(int64, int) (int64, error) { return 0, errors.New("not seekable") }

// TestMarkers checks how marker directories and plain directories differ.
func TestMarkers(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	put(t, b, "marked/", "")
	put(t, b, "marked/inner/x", "x")
	// A directory made by hand is only an implicit prefix.
	if err := os.MkdirAll(filepath.Join(b.Root(), "plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Root(), "plain", "f"), []byte("by hand"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, b.List(ctx, "")), []string{"marked/", "marked/inner/x", "plain/f"}; !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	if got, want := keys(t, b.ListDir(ctx, "plain/")), []string{"plain/f"}; !slices.Equal(got, want) {
		t.Errorf("ListDir(plain/) = %q, want %q", got, want)
	}
	if _, err := b.Stat(ctx, "plain/"); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("Stat(plain/) = %v, want ErrNotExist", err)
	}
	// Deleting below a marker keeps the marked directory.
	if err := b.Delete(ctx, "marked/inner/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Root(), "marked", "inner")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marked/inner still exists after its last object was deleted: %v", err)
	}
	if _, err := b.Stat(ctx, "marked/"); err != nil {
		t.Errorf("Stat(marked/) after deleting below it: %v", err)
	}
	// Deleting the marker of a directory that holds files keeps the files.
	put(t, b, "marked/y", "y")
	if err := b.Delete(ctx, "marked/"); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, b.List(ctx, "marked/")), []string{"marked/y"}; !slices.Equal(got, want) {
		t.Errorf("List(marked/) after deleting the marker = %q, want %q", got, want)
	}
	if err := b.Delete(ctx, "marked/y"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Root(), "marked")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unmarked, empty directory marked/ still exists: %v", err)
	}
	if _, err := b.Put(ctx, "m2/", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrInvalidKey) {
		t.Errorf("Put of a marker with content = %v, want ErrInvalidKey", err)
	}
}

// TestHandPlacedFiles: files ferry did not write have no checksums nor
// metadata; a file ferry wrote and someone changed in place loses its
// checksums and gets a new version.
func TestHandPlacedFiles(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	p := filepath.Join(b.Root(), "hand")
	if err := os.WriteFile(p, []byte("by hand"), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := b.Stat(ctx, "hand")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Checksums.IsZero() || info.Metadata != nil || info.Version.IsZero() || info.Size != 7 {
		t.Errorf("hand-placed file: %+v, want size 7, a version and nothing else", info)
	}

	_, err = b.Put(ctx, "ferry", bytes.NewReader([]byte("original")), 8,
		backends.PutOptions{Metadata: map[string]string{"mode": "0644"}})
	if err != nil {
		t.Fatal(err)
	}
	before, err := b.Stat(ctx, "ferry")
	if err != nil {
		t.Fatal(err)
	}
	if before.Checksums.IsZero() {
		t.Fatal("ferry-written file has no checksums")
	}
	f, err := os.OpenFile(filepath.Join(b.Root(), "ferry"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(" and more"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	after, err := b.Stat(ctx, "ferry")
	if err != nil {
		t.Fatal(err)
	}
	if !after.Checksums.IsZero() || after.Version == before.Version || after.Metadata["mode"] != "0644" {
		t.Errorf("changed in place: %+v, want no checksums, a new version, metadata kept", after)
	}
}

// TestStagingNeverListed: the staging directory exists after writes but
// no listing shows it.
func TestStagingNeverListed(t *testing.T) {
	b := newBackend(t)
	ctx := t.Context()
	u, err := b.CreateUpload(ctx, "big", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UploadPart(ctx, u, 1, strings.NewReader("part"), 4); err != nil {
		t.Fatal(err)
	}
	put(t, b, "x", "x")
	if _, err := os.Stat(filepath.Join(b.Root(), ".ferry-tmp", "uploads", u.ID)); err != nil {
		t.Fatalf("upload directory: %v", err)
	}
	for _, prefix := range []string{"", ".", ".ferry-tmp", ".ferry-tmp/", ".ferry-tmp/uploads/"} {
		for name, seq := range map[string]func(func(backends.Entry, error) bool){
			"List": b.List(ctx, prefix), "ListDir": b.ListDir(ctx, prefix),
		} {
			for _, k := range keys(t, seq) {
				if strings.Contains(k, ".ferry-tmp") {
					t.Errorf("%s(%q) shows %q", name, prefix, k)
				}
			}
		}
	}
}
