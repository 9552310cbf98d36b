package load

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
)

// staleReason decides what a re-run fetches again: every reason, and the
// cases that are up to date.
func TestStaleReason(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := os.Chtimes(file, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	lstat := func(name string) os.FileInfo {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	fi := lstat("f")
	lm := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) // the object's Last-Modified
	etag := backends.Version{ETag: "e1"}
	obj := backends.ObjectInfo{Key: "f", Size: 5, ModTime: lm, Version: etag}
	rec := &record{Version: etag, Size: 5, Mtime: mtime.UnixNano(), ModTime: lm.UnixNano()}
	with := func(f func(o *backends.ObjectInfo)) backends.ObjectInfo { o := obj; f(&o); return o }
	now := time.Now()

	for _, tc := range []struct {
		name string
		st   localState
		obj  backends.ObjectInfo
		want string
	}{
		{"missing", localState{}, obj, "missing"},
		{"a directory", localState{exists: true, info: lstat(".")}, obj, "a directory is in the way"},
		{"a symlink", localState{exists: true, info: lstat("link")}, obj, "not a regular file"},
		{"other size", localState{exists: true, info: fi, rec: rec}, with(func(o *backends.ObjectInfo) { o.Size = 6 }), "size differs"},
		{"no record", localState{exists: true, info: fi}, obj, "not written by ferry load"},
		{"up to date", localState{exists: true, info: fi, rec: rec}, obj, ""},
		{"new version", localState{exists: true, info: fi, rec: rec}, with(func(o *backends.ObjectInfo) { o.Version.ETag = "e2" }), "object changed"},
		{"no versions, same Last-Modified", localState{exists: true, info: fi, rec: rec},
			with(func(o *backends.ObjectInfo) { o.Version = backends.Version{} }), ""},
		{"no versions, new Last-Modified", localState{exists: true, info: fi, rec: rec},
			with(func(o *backends.ObjectInfo) { o.Version, o.ModTime = backends.Version{}, lm.Add(time.Second) }), "object changed"},
		{"file touched since", localState{exists: true, info: fi, rec: &record{Version: etag, Size: 5, Mtime: mtime.UnixNano() + 1}}, obj, "mtime differs"},
		// Without extended attributes: the listing alone.
		{"no xattrs, mtime metadata equal", localState{exists: true, info: fi, noXattr: true},
			with(func(o *backends.ObjectInfo) { o.Metadata = map[string]string{"mtime": mtime.Format(time.RFC3339Nano)} }), ""},
		{"no xattrs, mtime metadata differs", localState{exists: true, info: fi, noXattr: true},
			with(func(o *backends.ObjectInfo) { o.Metadata = map[string]string{"mtime": lm.Format(time.RFC3339Nano)} }), "mtime differs"},
		{"no xattrs, mtime is Last-Modified", localState{exists: true, info: fi, noXattr: true},
			with(func(o *backends.ObjectInfo) { o.ModTime = mtime }), ""},
		{"no xattrs, written after the object", localState{exists: true, info: fi, noXattr: true},
			with(func(o *backends.ObjectInfo) { o.ModTime = now.Add(-time.Hour) }), ""},
		{"no xattrs, object newer than the file", localState{exists: true, info: fi, noXattr: true},
			with(func(o *backends.ObjectInfo) { o.ModTime = now.Add(time.Hour) }), "older than the object"},
	} {
		if got := staleReason(tc.st, tc.obj); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
