package journal

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
)

func entry(key string) Entry {
	return Entry{Key: key, Source: "src/" + key, Size: 42, ModTime: time.Unix(1700000000, 123456789).UTC(),
		Inode: 7, Mode: 0o644, Sums: backends.Checksums{MD5: []byte("0123456789abcdef"), CRC32C: []byte{1, 2, 3, 4}}}
}

func upload(key string) backends.Upload {
	return backends.Upload{Key: key, ID: "up-" + key, Started: time.Unix(1700000100, 0).UTC(),
		Options: backends.PutOptions{ContentType: "text/plain", Metadata: map[string]string{"mtime": "1"}}}
}

func mustOpen(t *testing.T, dir string) *Journal {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestReplayAfterReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "j")
	if Exists(dir) {
		t.Fatal("Exists before Open")
	}
	j := mustOpen(t, dir)
	meta := Meta{Target: "s3://b/p/", Created: time.Unix(5, 0).UTC(), Values: map[string]string{"k": "v"}}
	steps := []error{
		j.SetMeta(meta),
		j.Stage(entry("a")), j.Stage(entry("b")), j.Stage(entry("c")),
		j.StartUpload("b", upload("b"), 8<<20),
		j.AddPart("b", backends.Part{Number: 3, Size: 5, ETag: "e3"}),
		j.AddPart("b", backends.Part{Number: 1, Size: 10, ETag: "e1"}),
		j.AddPart("b", backends.Part{Number: 1, Size: 10, ETag: "e1bis"}),
		j.Done("a"),
		j.Done("nothing"),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := j.AddPart("c", backends.Part{Number: 1}); !errors.Is(err, ErrNotStaged) {
		t.Fatalf("AddPart without upload: %v, want ErrNotStaged", err)
	}
	if err := j.StartUpload("zz", upload("zz"), 8<<20); !errors.Is(err, ErrNotStaged) {
		t.Fatalf("StartUpload of unknown key: %v, want ErrNotStaged", err)
	}
	want := j.Entries()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if !Exists(dir) {
		t.Fatal("Exists after Close = false")
	}

	j = mustOpen(t, dir)
	defer j.Close()
	got := j.Entries()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("replayed entries\n got %+v\nwant %+v", got, want)
	}
	if len(got) != 2 || got[0].Key != "b" || got[1].Key != "c" {
		t.Fatalf("entries = %+v, want b and c", got)
	}
	b := got[0]
	if b.Upload == nil || b.Upload.ID != "up-b" || b.PartSize != 8<<20 || b.Upload.Options.Metadata["mtime"] != "1" {
		t.Fatalf("upload of b = %+v", b.Upload)
	}
	wantParts := []backends.Part{{Number: 1, Size: 10, ETag: "e1bis"}, {Number: 3, Size: 5, ETag: "e3"}}
	if !reflect.DeepEqual(b.Parts, wantParts) {
		t.Fatalf("parts = %+v, want %+v", b.Parts, wantParts)
	}
	if m := j.Meta(); m.Target != meta.Target || m.Values["k"] != "v" || !m.Created.Equal(meta.Created) {
		t.Fatalf("meta = %+v", m)
	}
	// Reopening compacted the dead records: meta + one line per entry.
	if n := countLines(t, dir); n != 3 {
		t.Fatalf("log has %d lines after reopen, want 3 (compacted)", n)
	}
}

func countLines(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, LogName))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

func TestStartUploadForgetsOldParts(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir)
	defer j.Close()
	_ = j.Stage(entry("k"))
	_ = j.StartUpload("k", upload("k"), 8<<20)
	_ = j.AddPart("k", backends.Part{Number: 1, Size: 1})
	u2 := upload("k")
	u2.ID = "second"
	if err := j.StartUpload("k", u2, 8<<20); err != nil {
		t.Fatal(err)
	}
	e, ok := j.Entry("k")
	if !ok || e.Upload.ID != "second" || len(e.Parts) != 0 {
		t.Fatalf("entry = %+v, want the second upload without parts", e)
	}
	// A copy handed out does not alias the journal's state.
	e.Upload.ID = "changed"
	if e2, _ := j.Entry("k"); e2.Upload.ID != "second" {
		t.Fatal("Entry returned an aliased upload")
	}
}

func TestTornTailIsDropped(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir)
	_ = j.Stage(entry("a"))
	_ = j.Stage(entry("b"))
	j.Close()

	path := filepath.Join(dir, LogName)
	// A torn last record (a crash in the middle of a write) and a record
	// whose checksum does not match are both dropped with what follows.
	good, _ := os.ReadFile(path)
	line, _ := encode(record{Op: opStage, Entry: &Entry{Key: "c"}})
	for name, tail := range map[string][]byte{
		"torn":    line[:len(line)/2],
		"corrupt": append(append([]byte("00000000"), line[8:]...), line...),
		"garbage": []byte("\x00\x00\x00\n"),
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, append(append([]byte{}, good...), tail...), 0o600); err != nil {
				t.Fatal(err)
			}
			j := mustOpen(t, dir)
			keys := []string{}
			for _, e := range j.Entries() {
				keys = append(keys, e.Key)
			}
			if !reflect.DeepEqual(keys, []string{"a", "b"}) {
				t.Fatalf("keys = %v, want [a b]", keys)
			}
			// The journal stays usable and the bad tail is gone for good.
			if err := j.Stage(entry("d")); err != nil {
				t.Fatal(err)
			}
			j.Close()
			j = mustOpen(t, dir)
			if n := j.Len(); n != 3 {
				t.Fatalf("after append and reopen: %d entries, want 3", n)
			}
			j.Close()
			if err := os.WriteFile(path, good, 0o600); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir)
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	j.Close()
	j2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	j2.Close()
	if err := j2.Stage(entry("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stage after Close: %v, want ErrClosed", err)
	}
}

func TestCompactionBoundsTheLog(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir)
	defer j.Close()
	_ = j.Stage(entry("big"))
	_ = j.StartUpload("big", upload("big"), 8<<20)
	// Many small files that come and go, and parts of one big upload.
	for i := range 5000 {
		k := fmt.Sprintf("f%05d", i)
		if err := j.Stage(entry(k)); err != nil {
			t.Fatal(err)
		}
		if err := j.Done(k); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := j.AddPart("big", backends.Part{Number: i/10 + 1, Size: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := countLines(t, dir); n > 4*2+1024+1 {
		t.Fatalf("log has %d lines with 1 live entry, want it compacted", n)
	}
	e, _ := j.Entry("big")
	if len(e.Parts) != 500 || j.Len() != 1 {
		t.Fatalf("after compactions: %d parts, %d entries; want 500 and 1", len(e.Parts), j.Len())
	}
}

func TestReset(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir)
	_ = j.Stage(entry("a"))
	if err := j.Reset(Meta{Target: "gs://other/"}); err != nil {
		t.Fatal(err)
	}
	_ = j.Stage(entry("b"))
	j.Close()
	j = mustOpen(t, dir)
	defer j.Close()
	if es := j.Entries(); len(es) != 1 || es[0].Key != "b" || j.Meta().Target != "gs://other/" {
		t.Fatalf("after reset: %+v meta %+v", es, j.Meta())
	}
}

func TestRemove(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, ".j")
	j := mustOpen(t, dir)
	_ = j.Stage(entry("a"))
	if err := j.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal dir still there: %v", err)
	}
	// A directory holding other files is kept, the journal's files are not.
	j = mustOpen(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "mine"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := j.Remove(); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 || left[0].Name() != "mine" {
		t.Fatalf("left in dir: %v", left)
	}
}

// TestKilledWriter runs a writer in a child process that exits without
// closing the journal (as a killed process would) and checks that every
// record it acknowledged is replayed and that its lock died with it.
func TestKilledWriter(t *testing.T) {
	if dir := os.Getenv("JOURNAL_TEST_CHILD_DIR"); dir != "" {
		j, err := Open(dir)
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		_ = j.Stage(entry("a"))
		_ = j.Stage(entry("b"))
		_ = j.StartUpload("b", upload("b"), 8<<20)
		_ = j.AddPart("b", backends.Part{Number: 2, Size: 3})
		_ = j.Done("a")
		os.Exit(0) // no Close, no Sync
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriter$")
	cmd.Env = append(os.Environ(), "JOURNAL_TEST_CHILD_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	j := mustOpen(t, dir)
	defer j.Close()
	es := j.Entries()
	if len(es) != 1 || es[0].Key != "b" || es[0].Upload == nil || len(es[0].Parts) != 1 || es[0].Parts[0].Number != 2 {
		t.Fatalf("entries after a killed writer: %+v", es)
	}
}
