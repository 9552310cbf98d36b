package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/local"
	"github.com/ferryio/ferry/backends/metered"
	"github.com/ferryio/ferry/backends/prefix"
	"github.com/ferryio/ferry/fs/journal"
	"github.com/ferryio/ferry/fs/objmeta"
)

// events collects Events for assertions.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) Event(event, msg string, _ map[string]any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, event+": "+msg)
}

func (e *events) grep(s string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, l := range e.list {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// bucket is a local-provider bucket seen through the prefix "data/".
func bucket(t *testing.T) (backends.Backend, string) {
	t.Helper()
	root := t.TempDir()
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return prefix.New(b, "data/"), "file://" + root + "/data/"
}

func write(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

var t0 = time.Date(2023, 11, 14, 22, 13, 20, 123456789, time.UTC)

// tree makes a directory with small files, a large one, an empty
// directory, a symlink and a FIFO.
func tree(t *testing.T) (string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"a.txt":                       []byte("hello"),
		"sub/b.json":                  []byte(`{"b":1}`),
		"sub/deep/c.bin":              random(3000),
		"big.bin":                     random(100_000),
		"empty":                       nil,
		"name with space and ünïcode": []byte("x"),
	}
	for name, data := range files {
		write(t, filepath.Join(dir, name), data, t0)
	}
	if err := os.MkdirAll(filepath.Join(dir, "emptydir/inner"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return dir, files
}

func run(t *testing.T, o Options) (Result, error) {
	t.Helper()
	if o.PartSize == 0 {
		o.PartSize = 16 << 10
	}
	return Run(context.Background(), o)
}

func get(t *testing.T, b backends.Backend, key string) ([]byte, backends.ObjectInfo) {
	t.Helper()
	rc, info, err := b.GetRange(context.Background(), key, 0, -1, backends.ReadOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data, info
}

func keys(t *testing.T, b backends.Backend) []string {
	t.Helper()
	var out []string
	for e, err := range b.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Key)
	}
	return out
}

func TestStoreThenRerunListsOnly(t *testing.T) {
	dir, files := tree(t)
	b, url := bucket(t)
	ev := &events{}
	before, _ := os.Stat(dir)
	res, err := run(t, Options{Dir: dir, Store: b, Target: url, Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	// 6 files and the marker of emptydir/inner; the link and nothing else
	// skipped.
	if res.Uploaded != 7 || res.Skipped != 1 || res.UpToDate != 0 {
		t.Fatalf("result = %+v", res)
	}
	if len(ev.grep(`skip: skipping "link"`)) != 1 {
		t.Fatalf("no skip event for the symlink: %v", ev.list)
	}
	want := []string{"a.txt", "big.bin", "empty", "emptydir/inner/", "name with space and ünïcode", "sub/b.json", "sub/deep/c.bin"}
	if got := keys(t, b); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keys = %q, want %q", got, want)
	}
	for name, data := range files {
		got, info := get(t, b, name)
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: content differs", name)
		}
		if mt, ok := objmeta.ParseMtime(info.Metadata); !ok || !mt.Equal(t0) {
			t.Fatalf("%s: mtime metadata %q, want %v", name, info.Metadata, t0)
		}
		if info.Metadata[objmeta.MetaMode] != "0100640" {
			t.Fatalf("%s: mode metadata %q", name, info.Metadata[objmeta.MetaMode])
		}
	}
	if _, info := get(t, b, "sub/b.json"); info.ContentType != "application/json" {
		t.Fatalf("content type %q", info.ContentType)
	}
	// The journal is gone and the directory looks as it did.
	if _, err := os.Stat(filepath.Join(dir, JournalDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal left behind: %v", err)
	}
	if after, _ := os.Stat(dir); !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("dir mtime %v, was %v", after.ModTime(), before.ModTime())
	}

	// A re-run lists and does nothing else.
	mb, counts := metered.New(b, nil)
	res, err = run(t, Options{Dir: dir, Store: mb, Target: url})
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 0 || res.UpToDate != 7 {
		t.Fatalf("re-run result = %+v", res)
	}
	for kind, n := range counts.Snapshot() {
		if kind != metered.List && kind != metered.Uploads {
			t.Fatalf("re-run made %d %s requests (%s)", n, kind, counts)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, JournalDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a no-op run created the journal: %v", err)
	}
}

// bareListing wraps a real backend so that its listings carry no checksums
// and no metadata, as S3's do.
type bareListing struct {
	backends.Backend
	backends.Multipart
}

func (b bareListing) List(ctx context.Context, p string) iter.Seq2[backends.Entry, error] {
	return bare(b.Backend.List(ctx, p))
}

func (b bareListing) ListDir(ctx context.Context, p string) iter.Seq2[backends.Entry, error] {
	return bare(b.Backend.ListDir(ctx, p))
}

func bare(seq iter.Seq2[backends.Entry, error]) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		for e, err := range seq {
			e.Checksums, e.Metadata, e.ContentType = backends.Checksums{}, nil, ""
			if !yield(e, err) {
				return
			}
		}
	}
}

// TestRerunWithBareListings: where listings carry neither checksums nor
// metadata, the sum records still make a re-run listing-only, and without
// them one HEAD per file settles it.
func TestRerunWithBareListings(t *testing.T) {
	dir, _ := tree(t)
	b, url := bucket(t)
	bare := bareListing{Backend: b, Multipart: b.(backends.Multipart)}
	if _, err := run(t, Options{Dir: dir, Store: bare, Target: url}); err != nil {
		t.Fatal(err)
	}
	mb, counts := metered.New(bare, nil)
	res, err := run(t, Options{Dir: dir, Store: mb, Target: url})
	if err != nil || res.UpToDate != 7 {
		t.Fatalf("%+v %v", res, err)
	}
	if n := counts.Requests(metered.Head) + counts.Requests(metered.Put); n != 0 {
		t.Fatalf("re-run made HEAD or PUT requests: %s", counts)
	}
	// Without sum records (a copy of the tree): one HEAD per file, no PUT.
	copyDir := t.TempDir()
	if err := os.CopyFS(copyDir, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(copyDir, "link"))
	filepath.Walk(copyDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			os.Chtimes(p, t0, t0)
		}
		return err
	})
	mb, counts = metered.New(bare, nil)
	if res, err := run(t, Options{Dir: copyDir, Store: mb, Target: url}); err != nil || res.UpToDate != 7 {
		t.Fatalf("%+v %v", res, err)
	}
	if h, p := counts.Requests(metered.Head), counts.Requests(metered.Put); h != 6 || p != 0 {
		t.Fatalf("copy: %d HEAD, %d PUT; want 6 and 0", h, p)
	}
	// And now the copy has its records: listing only.
	mb, counts = metered.New(bare, nil)
	if _, err := run(t, Options{Dir: copyDir, Store: mb, Target: url}); err != nil {
		t.Fatal(err)
	}
	if h := counts.Requests(metered.Head); h != 0 {
		t.Fatalf("second run on the copy: %s", counts)
	}
}

func TestUpToDateByChecksumWithoutRecord(t *testing.T) {
	dir, _ := tree(t)
	b, url := bucket(t)
	if _, err := run(t, Options{Dir: dir, Store: b, Target: url}); err != nil {
		t.Fatal(err)
	}
	// A copy of the tree (new inodes, no sum records, same mtimes) is up
	// to date by checksum and mtime; a touched file is not.
	copyDir := t.TempDir()
	if err := os.CopyFS(copyDir, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(copyDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			os.Chtimes(p, t0, t0)
		}
		return err
	})
	os.Remove(filepath.Join(copyDir, "link")) // CopyFS copied the link's target
	touched := t0.Add(time.Second)
	os.Chtimes(filepath.Join(copyDir, "a.txt"), touched, touched)
	res, err := run(t, Options{Dir: copyDir, Store: b, Target: url})
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 1 || res.UpToDate != 6 {
		t.Fatalf("result = %+v, want a.txt uploaded, the rest up to date", res)
	}
	if _, info := get(t, b, "a.txt"); !strings.HasPrefix(info.Metadata[objmeta.MetaMtime], "2023-11-14T22:13:21.") {
		t.Fatalf("mtime after touch = %q", info.Metadata[objmeta.MetaMtime])
	}
}

// failing wraps a real backend and fails UploadPart calls after the
// first allow, counting the calls.
type failing struct {
	backends.Backend
	backends.Multipart
	allow atomic.Int64
	parts atomic.Int64
}

var errInjected = errors.New("injected failure")

func (f *failing) UploadPart(ctx context.Context, u backends.Upload, n int, body io.ReadSeeker, size int64) (backends.Part, error) {
	if f.parts.Add(1) > f.allow.Load() {
		return backends.Part{}, errInjected
	}
	return f.Multipart.UploadPart(ctx, u, n, body, size)
}

func TestResumeSendsOnlyMissingParts(t *testing.T) {
	dir := t.TempDir()
	big := random(10*16<<10 + 123) // 11 parts of 16 KiB
	write(t, filepath.Join(dir, "big.bin"), big, t0)
	write(t, filepath.Join(dir, "small"), []byte("s"), t0)
	b, url := bucket(t)
	f := &failing{Backend: b, Multipart: b.(backends.Multipart)}
	f.allow.Store(4)
	_, err := run(t, Options{Dir: dir, Store: f, Target: url, Concurrency: 1})
	if !errors.Is(err, errInjected) {
		t.Fatalf("first run: %v, want the injected failure", err)
	}
	// Nothing is visible at the key; the journal holds the upload.
	if _, err := b.Stat(context.Background(), "big.bin"); !errors.Is(err, backends.ErrNotExist) {
		t.Fatalf("partial object visible: %v", err)
	}
	j, err := journal.Open(filepath.Join(dir, JournalDirName))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := j.Entry("big.bin")
	j.Close()
	if !ok || e.Upload == nil || len(e.Parts) != 4 {
		t.Fatalf("journal entry = %+v, want an upload with 4 parts", e)
	}

	mb, counts := metered.New(b, nil)
	ev := &events{}
	res, err := run(t, Options{Dir: dir, Store: mb, Target: url, Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	if n := counts.Requests(metered.Part); n != 11-4 {
		t.Fatalf("re-run sent %d parts, want 7", n)
	}
	if res.Resumed != 1 || res.PartsReused != 4 || len(ev.grep("4 of 11 parts already stored")) != 1 {
		t.Fatalf("result = %+v, events %v", res, ev.list)
	}
	if got, _ := get(t, b, "big.bin"); !bytes.Equal(got, big) {
		t.Fatal("resumed object differs from the file")
	}
	if n := len(collect(b.(backends.Multipart).ListUploads(context.Background(), ""))); n != 0 {
		t.Fatalf("%d uploads still pending", n)
	}
}

// interrupting wraps a real backend: once n Puts have succeeded it cancels
// the run (as a kill would stop it), and it notes whether the journal
// existed before every Put.
type interrupting struct {
	backends.Backend
	n           int64
	cancel      context.CancelFunc
	jdir        string
	puts        atomic.Int64
	unjournaled atomic.Int64 // Puts made while no journal existed
}

func (w *interrupting) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	if !journal.Exists(w.jdir) {
		w.unjournaled.Add(1)
	}
	info, err := w.Backend.Put(ctx, key, body, size, opts)
	if err == nil && w.puts.Add(1) == w.n {
		w.cancel()
	}
	return info, err
}

// TestInterruptedSmallFilesResume stops a run of files that each go in one
// request part-way, and checks that the plan was journaled before any of
// them was sent and that the re-run sends exactly the files the store does not hold, with no
// HEAD although its listing carries neither checksums nor metadata (as
// S3's): the sum record written after each Put says what is stored.
func TestInterruptedSmallFilesResume(t *testing.T) {
	dir := t.TempDir()
	const files = 60
	for i := range files {
		write(t, filepath.Join(dir, fmt.Sprintf("d%d/f%02d", i%4, i)), random(100+i*50), t0)
	}
	b, url := bucket(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const conc = 4
	w := &interrupting{Backend: b, n: 20, cancel: cancel, jdir: filepath.Join(dir, JournalDirName)}
	_, err := Run(ctx, Options{Dir: dir, Store: w, Target: url, Concurrency: conc, PartSize: 16 << 10})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	if n := w.unjournaled.Load(); n != 0 || !journal.Exists(w.jdir) {
		t.Fatalf("%d Puts made before the plan was journaled (journal there after the kill: %v)", n, journal.Exists(w.jdir))
	}
	stored := len(keys(t, b))
	if stored < 20 || stored >= files {
		t.Fatalf("%d of %d files stored by the interrupted run, want 20..%d", stored, files, files-1)
	}

	mb, counts := metered.New(bareListing{Backend: b, Multipart: b.(backends.Multipart)}, nil)
	res, err := run(t, Options{Dir: dir, Store: mb, Target: url, Concurrency: conc})
	if err != nil {
		t.Fatal(err)
	}
	if n := counts.Requests(metered.Put); n != int64(files-stored) || res.Uploaded != files-stored || res.UpToDate != stored {
		t.Fatalf("re-run: %d PUTs, result %+v; want %d uploads and %d up to date", n, res, files-stored, stored)
	}
	if n := counts.Requests(metered.Head); n != 0 {
		t.Fatalf("re-run made %d HEAD requests, want none (%s)", n, counts)
	}
	for i := range files {
		rel := fmt.Sprintf("d%d/f%02d", i%4, i)
		want, _ := os.ReadFile(filepath.Join(dir, rel))
		if got, _ := get(t, b, rel); !bytes.Equal(got, want) {
			t.Fatalf("%s differs in the store", rel)
		}
	}
}

func collect[T any](seq func(func(T, error) bool)) []T {
	var out []T
	for v, err := range seq {
		if err != nil {
			panic(err)
		}
		out = append(out, v)
	}
	return out
}

func TestChangedFileRestartsUpload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.bin")
	write(t, path, random(5*16<<10), t0)
	b, url := bucket(t)
	f := &failing{Backend: b, Multipart: b.(backends.Multipart)}
	f.allow.Store(2)
	if _, err := run(t, Options{Dir: dir, Store: f, Target: url, Concurrency: 1}); !errors.Is(err, errInjected) {
		t.Fatalf("first run: %v", err)
	}
	now := random(5*16<<10 + 1)
	write(t, path, now, t0.Add(time.Hour))
	res, err := run(t, Options{Dir: dir, Store: b, Target: url})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 0 || res.Aborted != 1 {
		t.Fatalf("result = %+v, want the old upload aborted, none resumed", res)
	}
	if got, _ := get(t, b, "big.bin"); !bytes.Equal(got, now) {
		t.Fatal("object is not the new content")
	}
}

// largerParts is a store whose smallest part is min bytes.
type largerParts struct {
	backends.Backend
	backends.Multipart
	min int64
}

func (l largerParts) MinPartSize() int64 { return l.min }

// A re-run keeps the part size of the upload it continues, unless the
// store no longer takes parts that small: then it aborts that upload and
// starts afresh.
func TestUploadWithInvalidPartSizeRestarts(t *testing.T) {
	dir := t.TempDir()
	big := random(10*16<<10 + 123)
	write(t, filepath.Join(dir, "big.bin"), big, t0)
	b, url := bucket(t)
	f := &failing{Backend: b, Multipart: b.(backends.Multipart)}
	f.allow.Store(4)
	if _, err := run(t, Options{Dir: dir, Store: f, Target: url, Concurrency: 1}); !errors.Is(err, errInjected) {
		t.Fatalf("first run: %v, want the injected failure", err)
	}
	mb, counts := metered.New(largerParts{Backend: b, Multipart: b.(backends.Multipart), min: 32 << 10}, nil)
	res, err := run(t, Options{Dir: dir, Store: mb, Target: url})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 0 || res.PartsReused != 0 || res.Aborted != 1 {
		t.Fatalf("result = %+v, want the old upload aborted, nothing resumed", res)
	}
	if n := counts.Requests(metered.Part); n != 6 {
		t.Fatalf("re-run sent %d parts, want the file's 6 parts of 32 KiB", n)
	}
	if got, _ := get(t, b, "big.bin"); !bytes.Equal(got, big) {
		t.Fatal("object differs from the file")
	}
	if n := len(collect(b.(backends.Multipart).ListUploads(context.Background(), ""))); n != 0 {
		t.Fatalf("%d uploads still pending", n)
	}
}

func TestDeleteAndDryRun(t *testing.T) {
	dir, _ := tree(t)
	b, url := bucket(t)
	ctx := context.Background()
	for _, k := range []string{"stale.txt", "sub/old/x", "sub/"} {
		body := "x"
		if strings.HasSuffix(k, "/") {
			body = ""
		}
		if _, err := b.Put(ctx, k, strings.NewReader(body), int64(len(body)), backends.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ev := &events{}
	res, err := run(t, Options{Dir: dir, Store: b, Target: url, Delete: true, DryRun: true, Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	// "sub/" is the marker of a directory that exists locally: kept.
	if res.Changes != 7+2 || len(ev.grep("would delete")) != 2 || len(ev.grep("would upload")) != 6 || len(ev.grep("would create")) != 1 {
		t.Fatalf("dry run: %+v %v", res, ev.list)
	}
	if got := keys(t, b); len(got) != 3 {
		t.Fatalf("dry run changed the store: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, JournalDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("dry run made a journal")
	}
	if _, ok := readRecord(filepath.Join(dir, "a.txt")); ok {
		t.Fatal("dry run wrote a sum record")
	}

	res, err = run(t, Options{Dir: dir, Store: b, Target: url, Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 2 || res.Uploaded != 7 {
		t.Fatalf("result = %+v", res)
	}
	for _, k := range keys(t, b) {
		if k == "stale.txt" || k == "sub/old/x" {
			t.Fatalf("%s not deleted", k)
		}
	}
	// Without --delete, extra keys stay.
	b.Put(ctx, "extra", strings.NewReader(""), 0, backends.PutOptions{})
	if res, err := run(t, Options{Dir: dir, Store: b, Target: url}); err != nil || res.Deleted != 0 {
		t.Fatalf("without Delete: %+v, %v", res, err)
	}
	if _, err := b.Stat(ctx, "extra"); err != nil {
		t.Fatal(err)
	}
}

func TestAbandonedUploads(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "f"), []byte("f"), t0)
	b, url := bucket(t)
	mp := b.(backends.Multipart)
	ctx := context.Background()
	if _, err := mp.CreateUpload(ctx, "someone-else", backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// A young upload of another writer is left alone...
	if res, err := run(t, Options{Dir: dir, Store: b, Target: url}); err != nil || res.Aborted != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	// ...one older than AbandonedAfter is aborted.
	res, err := run(t, Options{Dir: dir, Store: b, Target: url, AbandonedAfter: time.Nanosecond})
	if err != nil || res.Aborted != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if n := len(collect(mp.ListUploads(ctx, ""))); n != 0 {
		t.Fatalf("%d uploads left", n)
	}
}

// inflight wraps a real backend and records the most requests that were in
// flight at once.
type inflight struct {
	backends.Backend
	backends.Multipart
	cur, peak atomic.Int64
}

func (w *inflight) enter() func() {
	n := w.cur.Add(1)
	for {
		p := w.peak.Load()
		if n <= p || w.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return func() { w.cur.Add(-1) }
}

func (w *inflight) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	defer w.enter()()
	return w.Backend.Put(ctx, key, body, size, opts)
}

func (w *inflight) UploadPart(ctx context.Context, u backends.Upload, n int, body io.ReadSeeker, size int64) (backends.Part, error) {
	defer w.enter()()
	return w.Multipart.UploadPart(ctx, u, n, body, size)
}

func TestConcurrencyBoundsRequests(t *testing.T) {
	dir := t.TempDir()
	for i := range 4 {
		write(t, filepath.Join(dir, fmt.Sprintf("big%d", i)), random(20*16<<10), t0)
	}
	for i := range 20 {
		write(t, filepath.Join(dir, fmt.Sprintf("small%02d", i)), random(100), t0)
	}
	b, url := bucket(t)
	w := &inflight{Backend: b, Multipart: b.(backends.Multipart)}
	if _, err := run(t, Options{Dir: dir, Store: w, Target: url, Concurrency: 3}); err != nil {
		t.Fatal(err)
	}
	if p := w.peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak requests in flight = %d, want 2..3", p)
	}
}

// mutating changes a file in place (same size and inode) when its upload
// starts, as a writer still busy with it would.
type mutating struct {
	backends.Backend
	path string
	once sync.Once
	// dropSums: Puts go without their checksums, as to a store that
	// ignores them, which then stores the modified bytes.
	dropSums bool
}

func (m *mutating) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	m.once.Do(func() {
		f, _ := os.OpenFile(m.path, os.O_WRONLY, 0)
		f.WriteAt([]byte("X"), 0)
		f.Close()
	})
	if m.dropSums {
		opts.Checksums = backends.Checksums{}
	}
	return m.Backend.Put(ctx, key, body, size, opts)
}

func TestFileChangedDuringUpload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write(t, path, []byte("hello"), t0)
	b, url := bucket(t)
	ev := &events{}
	res, err := run(t, Options{Dir: dir, Store: &mutating{Backend: b, path: path}, Target: url, Events: ev})
	if !errors.Is(err, ErrChanged) || res.Failed != 1 {
		t.Fatalf("%+v %v, want ErrChanged", res, err)
	}
	if _, err := b.Stat(context.Background(), "f"); !errors.Is(err, backends.ErrNotExist) {
		t.Fatalf("object with mismatched content visible: %v", err)
	}
	// The next run stores what the file holds now.
	res, err = run(t, Options{Dir: dir, Store: b, Target: url})
	if err != nil || res.Uploaded != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if got, _ := get(t, b, "f"); string(got) != "Xello" {
		t.Fatalf("stored %q", got)
	}
}

// A store that does not check the request's checksums stores the modified
// bytes; the comparison of its checksums with the file's, after the
// upload, catches them and deletes the object.
func TestChangedFileStoredUncheckedIsDeleted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write(t, path, []byte("hello"), t0)
	b, url := bucket(t)
	res, err := run(t, Options{Dir: dir, Store: &mutating{Backend: b, path: path, dropSums: true}, Target: url})
	if !errors.Is(err, ErrChanged) || res.Failed != 1 {
		t.Fatalf("%+v %v, want ErrChanged", res, err)
	}
	if _, err := b.Stat(context.Background(), "f"); !errors.Is(err, backends.ErrNotExist) {
		t.Fatalf("object with mismatched content left visible: %v", err)
	}
}

func TestJournalDirElsewhereAndLocked(t *testing.T) {
	dir, _ := tree(t)
	b, url := bucket(t)
	jdir := filepath.Join(t.TempDir(), "j")
	j, err := journal.Open(jdir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, Options{Dir: dir, Store: b, Target: url, JournalDir: jdir}); !errors.Is(err, journal.ErrLocked) {
		t.Fatalf("with the journal held by another: %v, want ErrLocked", err)
	}
	j.Close()
	// DIR/.ferry-store is never stored, nor what Exclude names.
	write(t, filepath.Join(dir, JournalDirName, "x"), []byte("x"), t0)
	write(t, filepath.Join(dir, ".ferry-load", "y"), []byte("y"), t0)
	write(t, filepath.Join(dir, "sub", ".ferry-load"), []byte("kept"), t0)
	if _, err := run(t, Options{Dir: dir, Store: b, Target: url, JournalDir: jdir, Exclude: []string{".ferry-load"}}); err != nil {
		t.Fatal(err)
	}
	if journal.Exists(jdir) {
		t.Fatal("journal not removed")
	}
	for _, k := range keys(t, b) {
		if strings.HasPrefix(k, ".ferry") {
			t.Fatalf("stored %s", k)
		}
	}
	if _, err := b.Stat(context.Background(), "sub/.ferry-load"); err != nil {
		t.Fatalf("a file named like an excluded top-level path was not stored: %v", err)
	}
}

func TestDirIsASymlink(t *testing.T) {
	dir, _ := tree(t)
	link := filepath.Join(t.TempDir(), "data")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	b, url := bucket(t)
	res, err := run(t, Options{Dir: link, Store: b, Target: url})
	if err != nil || res.Uploaded != 7 {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(dir, JournalDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal left behind: %v", err)
	}
}
