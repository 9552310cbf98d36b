package load

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/metered"
)

// TestReplayRecordedVersionGone replays a manifest whose entry for a
// replaced object carries a version id (as on a store with ids) on the
// local store, which keeps no old versions and ignores
// ReadOptions.Exact: the check of the recorded version fails the run with
// ErrSnapshotChanged naming the key, before anything is loaded.
func TestReplayRecordedVersionGone(t *testing.T) {
	s := newStore(t)
	s.put(t, "a.txt", []byte("a"), time.Now(), "")
	s.put(t, "b.txt", []byte("first"), time.Now(), "")
	res, err := Run(t.Context(), s.b, t.TempDir(), opts())
	if err != nil {
		t.Fatal(err)
	}
	m := res.Loaded
	for i := range m.Objects {
		m.Objects[i].Version.ID = "v1-" + m.Objects[i].Key
	}
	s.put(t, "b.txt", []byte("SECOND"), time.Now(), "")
	o := opts()
	o.Manifest = m
	dir := filepath.Join(t.TempDir(), "dest")
	gets := s.counts.Requests(metered.Get)
	_, err = Run(t.Context(), s.b, dir, o)
	if !errors.Is(err, ErrSnapshotChanged) || !strings.Contains(err.Error(), `"b.txt"`) ||
		!strings.Contains(err.Error(), "no longer holds") || strings.Contains(err.Error(), `"a.txt"`) {
		t.Fatalf("replay of a version the store no longer holds: %v", err)
	}
	if n := s.counts.Requests(metered.Get) - gets; n != 1 {
		t.Errorf("%d GET requests, want 1 (the check of b.txt's version, no fetch)", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a.txt loaded although the snapshot cannot be: %v", err)
	}
}

// TestExactNeedsRecord checks that, without extended attributes, a file
// that is to hold a recorded version (exact) is never taken as up to date
// from the listing, which describes another version, while other files
// are.
func TestExactNeedsRecord(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"exact", "listed"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("abc"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	r := &runner{dir: dir, root: root}
	r.xattrs.Store(false)
	v := backends.Version{ETag: "e", ID: "1"}
	items := []*fileItem{
		{obj: backends.ObjectInfo{Key: "exact", Size: 3, Version: v}, path: "exact", exact: true},
		{obj: backends.ObjectInfo{Key: "listed", Size: 3, Version: v}, path: "listed"},
	}
	for _, it := range items {
		if err := r.scanFile(it, map[string]dirAction{}); err != nil {
			t.Fatal(err)
		}
	}
	if items[0].reason == "" || items[1].reason != "" {
		t.Errorf("reasons %q (exact) and %q (listed): want the exact file fetched, the listed one up to date",
			items[0].reason, items[1].reason)
	}
}
