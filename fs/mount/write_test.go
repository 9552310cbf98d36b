package mount

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/journal"
	"github.com/ferryio/ferry/fs/store"
)

// These tests drive the write state (staging, journal, recovery, the
// conflict rule) against a real local store, without the kernel; the e2e
// tests mount.

func newWriteEnv(t *testing.T, dir string, writeBack time.Duration) (*readEnv, *writer) {
	t.Helper()
	e := newReadEnv(t, Options{})
	return e, e.startWriter(t, dir, writeBack)
}

func (e *readEnv) startWriter(t *testing.T, dir string, writeBack time.Duration) *writer {
	t.Helper()
	w, err := startWriter(t.Context(), e.fsys, WriteOptions{Dir: dir, Target: "file:///test", WriteBack: writeBack})
	if err != nil {
		t.Fatal(err)
	}
	e.fsys.w = w
	return w
}

func (e *readEnv) get(t *testing.T, key string) ([]byte, bool) {
	t.Helper()
	body, _, err := e.store.GetRange(t.Context(), key, 0, -1, backends.ReadOptions{})
	if isNotExist(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

func (e *readEnv) want(t *testing.T, key string, want []byte) {
	t.Helper()
	if got, ok := e.get(t, key); !ok || !bytes.Equal(got, want) {
		t.Fatalf("%q in the store: %q (exists %v), want %q", key, got, ok, want)
	}
}

func checkWriter(t *testing.T, w *writer) {
	t.Helper()
	if err := w.checkInvariants(); err != nil {
		t.Fatal(err)
	}
}

// crash drops w as a killed process would: its journal lock goes, nothing
// is uploaded.
func crash(t *testing.T, w *writer) {
	t.Helper()
	w.mu.Lock()
	for _, wf := range w.files {
		w.stopTimerLocked(wf)
	}
	w.mu.Unlock()
	w.cancel()
	if err := w.j.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriteBackCrashRecovers(t *testing.T) {
	dir := t.TempDir()
	e, w := newWriteEnv(t, dir, time.Hour)
	ctx := t.Context()
	wf, err := w.open(ctx, "a/new.txt", nil, true, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.writeAt(wf, []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.commit(ctx, wf, false); err != nil {
		t.Fatal(err)
	}
	checkWriter(t, w)
	if _, ok := e.get(t, "a/new.txt"); ok {
		t.Fatal("uploaded before the write-back delay")
	}
	if c, ok := (&dirNode{fsys: e.fsys, key: "a/"}).localChild("new.txt"); !ok || c.obj.key != "a/new.txt" {
		t.Fatalf("the staged file is not shown in its directory: %+v %v", c, ok)
	}
	crash(t, w)

	w2 := e.startWriter(t, dir, 0)
	e.want(t, "a/new.txt", []byte("hello"))
	if n := w2.j.Len(); n != 0 {
		t.Fatalf("%d journal entries left after recovery", n)
	}
	checkWriter(t, w2)
	if err := w2.close(ctx); err != nil {
		t.Fatal(err)
	}
}

// stageFile creates key in w with content, and closes it (commit).
func stageFile(t *testing.T, w *writer, key, content string) *wfile {
	t.Helper()
	wf, err := w.open(t.Context(), key, nil, true, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.writeAt(wf, []byte(content), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.commit(t.Context(), wf, false); err != nil {
		t.Fatal(err)
	}
	return wf
}

func TestWriteBackUploadsWhenTheDelayEnds(t *testing.T) {
	e, w := newWriteEnv(t, t.TempDir(), time.Millisecond)
	stageFile(t, w, "b.txt", "later")
	w.timers.Wait() // the timer armed by the close has fired and uploaded
	e.want(t, "b.txt", []byte("later"))
	if n := w.j.Len(); n != 0 {
		t.Fatalf("%d journal entries left after the write-back upload", n)
	}
	checkWriter(t, w)
	if err := w.close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A file written again after its close is not uploaded by the delay's
// upload (a writer is still at it); its next close stages it again.
func TestWriteBackSkipsAFileWrittenSinceItsClose(t *testing.T) {
	e, w := newWriteEnv(t, t.TempDir(), time.Hour)
	ctx := t.Context()
	wf := stageFile(t, w, "c.txt", "one")
	if _, err := w.writeAt(wf, []byte("two"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.uploadPending(ctx, wf); err != nil { // what the timer runs
		t.Fatal(err)
	}
	if got, ok := e.get(t, "c.txt"); ok {
		t.Fatalf("uploaded %q while the file was being written again", got)
	}
	if err := w.commit(ctx, wf, false); err != nil {
		t.Fatal(err)
	}
	if err := w.uploadPending(ctx, wf); err != nil {
		t.Fatal(err)
	}
	e.want(t, "c.txt", []byte("two"))
	checkWriter(t, w)
}

// Unmounting does not wait for the write-back delay: pending files are
// uploaded at once.
func TestUnmountUploadsPendingWriteBacks(t *testing.T) {
	e, w := newWriteEnv(t, t.TempDir(), time.Hour)
	stageFile(t, w, "d/1.txt", "first")
	stageFile(t, w, "d/2.txt", "second")
	if _, ok := e.get(t, "d/1.txt"); ok {
		t.Fatal("uploaded before the write-back delay")
	}
	if err := w.close(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.want(t, "d/1.txt", []byte("first"))
	e.want(t, "d/2.txt", []byte("second"))
}

func TestFsyncUploadsAndConflictKeepsBoth(t *testing.T) {
	e, w := newWriteEnv(t, t.TempDir(), time.Hour)
	ctx := t.Context()
	e.put(t, "f.txt", []byte("base"))
	c, _, err := e.fsys.lookup(ctx, "", "f.txt")
	if err != nil {
		t.Fatal(err)
	}
	wf, err := w.open(ctx, "f.txt", &c.obj, false, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.writeAt(wf, []byte("+mine"), 4); err != nil {
		t.Fatal(err)
	}
	// fsync uploads at once, whatever the write-back delay.
	if err := w.commit(ctx, wf, true); err != nil {
		t.Fatal(err)
	}
	e.want(t, "f.txt", []byte("base+mine"))
	checkWriter(t, w)

	// The store changes under a second edit.
	e.put(t, "f.txt", []byte("theirs"))
	if _, err := w.writeAt(wf, []byte("!"), 9); err != nil {
		t.Fatal(err)
	}
	if err := w.commit(ctx, wf, true); err != nil {
		t.Fatal(err)
	}
	e.want(t, "f.txt", []byte("theirs"))
	var conflict string
	for ent, err := range e.store.List(ctx, "f.txt.conflict-") {
		if err != nil {
			t.Fatal(err)
		}
		conflict = ent.Key
	}
	if conflict == "" {
		t.Fatal("no conflict copy")
	}
	e.want(t, conflict, []byte("base+mine!"))
	if w.get(conflict) != wf || w.get("f.txt") != nil {
		t.Fatal("the staged file did not move to the conflict key")
	}
	checkWriter(t, w)
	if err := w.close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRenameCrashCompletesBothSteps(t *testing.T) {
	dir := t.TempDir()
	e, w := newWriteEnv(t, dir, 0)
	ctx := t.Context()
	e.put(t, "old", []byte("content"))
	// A rename cut short after its journal records: the new key staged
	// from the staged copy, the old one to delete.
	f, err := w.newStagingFile()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("content")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sums, err := store.HashFile(ctx, f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range []journal.Entry{{Key: "new", Source: f.Name(), Size: 7, ModTime: time.Now(), Mode: 0o644, Sums: sums}, {Key: "old"}} {
		if err := w.j.Stage(ent); err != nil {
			t.Fatal(err)
		}
	}
	crash(t, w)
	w2 := e.startWriter(t, dir, 0)
	e.want(t, "new", []byte("content"))
	if _, ok := e.get(t, "old"); ok {
		t.Fatal("the old key of the rename is still there")
	}
	if err := w2.close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestJournalOfAnotherTargetIsRefused(t *testing.T) {
	dir := t.TempDir()
	e, w := newWriteEnv(t, dir, time.Hour)
	wf, err := w.open(t.Context(), "k", nil, true, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.commit(t.Context(), wf, false); err != nil {
		t.Fatal(err)
	}
	crash(t, w)
	_, err = startWriter(context.Background(), e.fsys, WriteOptions{Dir: dir, Target: "file:///other"})
	if err == nil || !strings.Contains(err.Error(), "pending uploads for file:///test") {
		t.Fatalf("opening a journal of another target: %v", err)
	}
}
