package load

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Without unnamed files (no O_TMPFILE), objects go through named files in
// WorkDir, and the run is the same.
func TestNamedFilesWithoutOTmpfile(t *testing.T) {
	s := newStore(t)
	want, _ := s.dataset(t)
	for _, noUnnamed := range []bool{false, true} {
		dir := t.TempDir()
		o := opts()
		o.noUnnamed = noUnnamed
		res, err := Run(t.Context(), s.b, dir, o)
		if err != nil || res.Fetched != 6 {
			t.Fatalf("noUnnamed %v: %+v, %v", noUnnamed, res, err)
		}
		sameTree(t, dir, want)
		if res, err := Run(t.Context(), s.b, dir, o); err != nil || res.UpToDate != 6 {
			t.Errorf("noUnnamed %v: re-run %+v, %v; want all 6 up to date", noUnnamed, res, err)
		}
	}
}

// An unnamed file is invisible until linked, gets its times, and replaces
// a file that took its name meanwhile.
func TestUnnamedFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &runner{dir: dir, root: mustRoot(t, dir)}
	for _, name := range []string{"new", "taken"} {
		u, err := r.openUnnamed("d")
		if err != nil || u == nil {
			t.Fatalf("openUnnamed: %v, %v (this test needs O_TMPFILE)", u, err)
		}
		if _, err := u.f.WriteString("fresh " + name); err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(filepath.Join(dir, "d")); len(ents) != map[string]int{"new": 0, "taken": 1}[name] {
			t.Errorf("%s: %d entries in the directory before the link", name, len(ents))
		}
		if name == "taken" {
			if err := os.WriteFile(filepath.Join(dir, "d", name), []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mtime := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
		if err := u.chtimes(mtime); err != nil {
			t.Fatal(err)
		}
		if err := u.link(name); err != nil {
			t.Fatalf("%s: link: %v", name, err)
		}
		if err := u.close(); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "d", name)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "fresh "+name || !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: %q, mtime %v; want %q, %v", name, got, fi.ModTime(), "fresh "+name, mtime)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "d")); len(ents) != 2 {
		t.Errorf("%d entries after both links, want 2 (no temporary name left)", len(ents))
	}
}
