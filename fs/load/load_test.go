package load

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/local"
	"github.com/ferryio/ferry/backends/metered"
	"github.com/ferryio/ferry/backends/prefix"
	"github.com/ferryio/ferry/fs/namespace"
	"github.com/ferryio/ferry/fs/objread"
)

// The store in these tests is the real local driver (a directory acting as
// a bucket) under the prefix "data/", counted by metered.

type testStore struct {
	raw    backends.Backend // the bucket, for seeding
	b      backends.Backend // what load sees: prefix + metered
	counts *metered.Counts
}

func newStore(t *testing.T) *testStore {
	t.Helper()
	lb, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, counts := metered.New(prefix.New(lb, "data/"), nil)
	return &testStore{raw: lb, b: b, counts: counts}
}

// put stores data at key (relative to the prefix) with an rclone-style
// mtime and mode.
func (s *testStore) put(t *testing.T, key string, data []byte, mtime time.Time, mode string) backends.ObjectInfo {
	t.Helper()
	md := map[string]string{"mtime": mtime.UTC().Format(time.RFC3339Nano)}
	if mode != "" {
		md["mode"] = mode
	}
	info, err := s.raw.Put(context.Background(), "data/"+key, bytes.NewReader(data), int64(len(data)), backends.PutOptions{Metadata: md})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return info
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// tree reads dir back: files with their content, directories as nil.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			got[rel+"/"] = nil
			return nil
		}
		b, err := os.ReadFile(p)
		got[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sameTree(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	got := tree(t, dir)
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: missing", k)
		} else if !bytes.Equal(g, v) {
			t.Errorf("%s: %d bytes differ from the %d expected", k, len(g), len(v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: not expected", k)
		}
	}
}

const part = MinPartSize

// dataset seeds a tree with nested and empty directories, an empty file,
// unicode names and an object of several parts, and returns the expected
// local tree.
func (s *testStore) dataset(t *testing.T) (map[string][]byte, time.Time) {
	t.Helper()
	mtime := time.Date(2023, 4, 5, 6, 7, 8, 123456789, time.UTC)
	files := map[string][]byte{
		"a.txt":               []byte("hello"),
		"empty":               {},
		"dir/sub/deep.bin":    random(t, 3000),
		"dir/ünïcødé ✓.txt":   []byte("unicode"),
		"big/model.ckpt":      random(t, 5*part+123),
		"big/exactly-two.bin": random(t, 2*part),
	}
	want := map[string][]byte{"dir/": nil, "dir/sub/": nil, "big/": nil, "emptydir/": nil, "dir/sub/emptier/": nil}
	for k, v := range files {
		s.put(t, k, v, mtime, "0100640")
		want[k] = v
	}
	for _, d := range []string{"emptydir/", "dir/sub/emptier/"} {
		s.put(t, d, nil, mtime, "")
	}
	return want, mtime
}

func opts() Options { return Options{PartSize: part, Concurrency: 4} }

// Files another program put in a local store have no checksum there: they
// load, counted as unverified; the driver's own files are verified.
func TestFilesWithoutStoreChecksumAreCountedUnverified(t *testing.T) {
	bucket := t.TempDir()
	lb, err := local.New(bucket)
	if err != nil {
		t.Fatal(err)
	}
	s := &testStore{raw: lb, b: prefix.New(lb, "data/")}
	want := map[string][]byte{"stored.bin": random(t, 3000), "plain.bin": random(t, 2000), "plain-big.bin": random(t, 2*part+5)}
	s.put(t, "stored.bin", want["stored.bin"], time.Now(), "")
	for _, k := range []string{"plain.bin", "plain-big.bin"} {
		if err := os.WriteFile(filepath.Join(bucket, "data", k), want[k], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "dest")
	res, err := Run(t.Context(), s.b, dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, want)
	if res.Fetched != 3 || res.Verified != 1 || res.Unverified != 2 {
		t.Errorf("fetched %d, verified %d, unverified %d; want 3, 1 and 2", res.Fetched, res.Verified, res.Unverified)
	}
}

func TestRoundTripAndRerunListsOnly(t *testing.T) {
	s := newStore(t)
	want, mtime := s.dataset(t)
	dir := filepath.Join(t.TempDir(), "dest")
	res, err := Run(t.Context(), s.b, dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, want)
	if res.Fetched != 6 || res.UpToDate != 0 || res.Verified != 6 || res.Unverified != 0 {
		t.Errorf("first run: %+v", res)
	}
	for _, f := range []string{"a.txt", "empty", "big/model.ckpt", "dir/ünïcødé ✓.txt"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(mtime) || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mtime %v mode %v, want %v 0640", f, fi.ModTime(), fi.Mode(), mtime)
		}
	}

	before := s.counts.Snapshot()
	res, err = Run(t.Context(), s.b, dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	after := s.counts.Snapshot()
	for k, n := range after {
		if d := n - before[k]; d != 0 && k != metered.List {
			t.Errorf("re-run made %d %s requests, want listing only", d, k)
		}
	}
	if after[metered.List]-before[metered.List] != dirsListed(t, s.b) || res.UpToDate != 6 || res.Fetched != 0 || res.Bytes != 0 {
		t.Errorf("re-run: %+v, requests %v", res, after)
	}
	sameTree(t, dir, want)
}

func TestRepairsChangedAndMissingFiles(t *testing.T) {
	s := newStore(t)
	want, _ := s.dataset(t)
	dir := t.TempDir()
	if _, err := Run(t.Context(), s.b, dir, opts()); err != nil {
		t.Fatal(err)
	}
	// Same size, other bytes and mtime; a removed file; a touched file.
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("HELLO"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "dir/sub/deep.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "empty"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "local-only.txt")
	if err := os.WriteFile(extra, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	gets := s.counts.Requests(metered.Get)
	res, err := Run(t.Context(), s.b, dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetched != 3 || s.counts.Requests(metered.Get)-gets != 2 { // the empty file needs no GET
		t.Errorf("repair: %+v, %d GETs", res, s.counts.Requests(metered.Get)-gets)
	}
	want["local-only.txt"] = []byte("mine")
	sameTree(t, dir, want)

	// --delete removes what the store does not hold.
	if err := os.MkdirAll(filepath.Join(dir, "stray/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := opts()
	o.Delete = true
	res, err = Run(t.Context(), s.b, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	delete(want, "local-only.txt")
	sameTree(t, dir, want)
	if res.Deleted != 2 {
		t.Errorf("deleted %d, want 2 (a file and a tree)", res.Deleted)
	}
}

func TestDryRun(t *testing.T) {
	s := newStore(t)
	s.dataset(t)
	dir := filepath.Join(t.TempDir(), "dest")
	var mu sync.Mutex
	var lines []string
	o := opts()
	o.DryRun = true
	o.Notify = func(e Event) { mu.Lock(); lines = append(lines, e.Msg); mu.Unlock() }
	res, err := Run(t.Context(), s.b, dir, o)
	if !errors.Is(err, ErrChanges) || res.Fetched != 6 {
		t.Fatalf("dry run of a missing dir: %+v, %v", res, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dry run created %s: %v", dir, err)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "would fetch big/model.ckpt") {
		t.Errorf("dry run lines: %q", lines)
	}
	if _, err := Run(t.Context(), s.b, dir, opts()); err != nil {
		t.Fatal(err)
	}
	gets := s.counts.Requests(metered.Get)
	if _, err := Run(t.Context(), s.b, dir, o); err != nil {
		t.Errorf("dry run when up to date: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "a.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(t.Context(), s.b, dir, o); !errors.Is(err, ErrChanges) {
		t.Errorf("dry run with a missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dry run repaired a.txt")
	}
	if n := s.counts.Requests(metered.Get) - gets; n != 0 {
		t.Errorf("dry runs made %d GETs", n)
	}
}

// interrupted runs a load that is cancelled once `parts` parts of key are
// on disk, as a kill would stop it, and returns the bytes it fetched.
func interrupted(t *testing.T, s *testStore, dir, key string, parts int) int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	seen := 0
	o := opts()
	o.Concurrency = 1
	o.Notify = func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == EventPart && e.Key == key {
			if seen++; seen == parts {
				cancel()
			}
		}
	}
	res, err := Run(ctx, s.b, dir, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, WorkDir)); err != nil {
		t.Fatalf("no work directory after an interrupted run: %v", err)
	}
	return res.Bytes
}

func TestResumeFetchesOnlyMissingParts(t *testing.T) {
	s := newStore(t)
	big := random(t, 8*part)
	s.put(t, "big.bin", big, time.Now(), "")
	dir := t.TempDir()
	first := interrupted(t, s, dir, "big.bin", 3)
	res, err := Run(t.Context(), s.b, dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, map[string][]byte{"big.bin": big})
	if first < 3*part || res.Bytes > int64(len(big))-3*part || first+res.Bytes > int64(len(big))+part {
		t.Errorf("fetched %d then %d bytes of %d", first, res.Bytes, len(big))
	}
}

func TestResumeWithOtherPartSize(t *testing.T) {
	s := newStore(t)
	big := random(t, 8*part)
	s.put(t, "big.bin", big, time.Now(), "")
	dir := t.TempDir()
	interrupted(t, s, dir, "big.bin", 4)
	o := opts()
	o.PartSize = 2 * part
	res, err := Run(t.Context(), s.b, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, map[string][]byte{"big.bin": big})
	if res.Bytes > int64(len(big))-4*part {
		t.Errorf("re-run with a larger part size fetched %d bytes, want at most %d", res.Bytes, len(big)-4*part)
	}
}

func TestReplacedObjectIsFetchedAnew(t *testing.T) {
	s := newStore(t)
	s.put(t, "big.bin", random(t, 6*part), time.Now(), "")
	dir := t.TempDir()
	interrupted(t, s, dir, "big.bin", 2)
	fresh := random(t, 6*part)
	s.put(t, "big.bin", fresh, time.Now(), "")
	res, err := Run(t.Context(), s.b, dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, map[string][]byte{"big.bin": fresh})
	if res.Bytes != int64(len(fresh)) {
		t.Errorf("fetched %d bytes of the new version, want all %d", res.Bytes, len(fresh))
	}
}

func TestCorruptResumedPartIsCaughtAndRefetched(t *testing.T) {
	s := newStore(t)
	big := random(t, 6*part)
	s.put(t, "big.bin", big, time.Now(), "")
	dir := t.TempDir()
	interrupted(t, s, dir, "big.bin", 3)
	partFile, _ := workNames("big.bin")
	f, err := os.OpenFile(filepath.Join(dir, partFile), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("garbage"), 10); err != nil { // inside part 0, journaled as done
		t.Fatal(err)
	}
	f.Close()
	var retried bool
	var mu sync.Mutex
	o := opts()
	o.Notify = func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		retried = retried || (e.Kind == EventRetry && errors.Is(e.Err, backends.ErrChecksum))
	}
	if _, err := Run(t.Context(), s.b, dir, o); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, map[string][]byte{"big.bin": big})
	if !retried {
		t.Error("the corrupt part was not reported as a checksum mismatch")
	}
}

func TestInvalidKeysAreReportedAndTheRestLoaded(t *testing.T) {
	s := newStore(t)
	s.put(t, "ok.txt", []byte("ok"), time.Now(), "")
	s.put(t, WorkDir+"/evil.json", []byte(`{"key":"x"}`), time.Now(), "")
	dir := t.TempDir()
	res, err := Run(t.Context(), s.b, dir, opts())
	if !errors.Is(err, ErrInvalidKeys) || len(res.Invalid) != 1 {
		t.Fatalf("run: %+v, %v", res, err)
	}
	if !errors.Is(res.Invalid[0], namespace.ErrUnsafeKey) || !strings.Contains(res.Invalid[0].Error(), WorkDir+"/evil.json") {
		t.Errorf("invalid key error %v does not name the key", res.Invalid[0])
	}
	sameTree(t, dir, map[string][]byte{"ok.txt": []byte("ok")})
	if res.Loaded == nil || len(res.Loaded.Objects) != 1 {
		t.Errorf("loaded manifest: %+v", res.Loaded)
	}
}

func TestNeverWritesThroughSymlinks(t *testing.T) {
	s := newStore(t)
	s.put(t, "a/x.txt", []byte("inside"), time.Now(), "")
	s.put(t, "link.txt", []byte("replaced"), time.Now(), "")
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(t.Context(), s.b, dir, opts()); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, map[string][]byte{"a/": nil, "a/x.txt": []byte("inside"), "link.txt": []byte("replaced")})
	sameTree(t, outside, map[string][]byte{"victim": []byte("keep")})
}

func TestWrongTypeInTheWay(t *testing.T) {
	s := newStore(t)
	s.put(t, "f", []byte("file"), time.Now(), "")
	s.put(t, "m/", nil, time.Now(), "")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "f", "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m"), []byte("a file where a directory goes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(t.Context(), s.b, dir, opts()); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "m: a file is in the way") {
		t.Fatalf("without --delete: %v", err)
	}
	if _, err := Run(t.Context(), s.b, dir, opts()); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "--delete") {
		t.Fatalf("without --delete: %v", err)
	}
	o := opts()
	o.Delete = true
	if _, err := Run(t.Context(), s.b, dir, o); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, map[string][]byte{"f": []byte("file"), "m/": nil})
}

func TestManifestReplay(t *testing.T) {
	s := newStore(t)
	want, _ := s.dataset(t)
	dir := t.TempDir()
	res, err := Run(t.Context(), s.b, dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "manifest.json")
	digest, err := WriteManifest(file, res.Loaded)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Objects) != 8 || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("manifest of %d objects, digest %q", len(m.Objects), digest)
	}
	// A new object is not part of the snapshot; replay loads exactly it.
	s.put(t, "later.txt", []byte("later"), time.Now(), "")
	o := opts()
	o.Manifest = m
	dir2 := t.TempDir()
	res, err = Run(t.Context(), s.b, dir2, o)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir2, want)
	again, err := res.Loaded.Encode()
	if err != nil || Digest(again) != digest {
		t.Errorf("replay's manifest digest %s, want %s (%v)", Digest(again), digest, err)
	}

	s.put(t, "a.txt", []byte("HELLO"), time.Now(), "")
	_, err = Run(t.Context(), s.b, t.TempDir(), o)
	if !errors.Is(err, ErrSnapshotChanged) || !strings.Contains(err.Error(), `"a.txt"`) {
		t.Errorf("replay after a change: %v", err)
	}
}

func TestNoXattrFallback(t *testing.T) {
	s := newStore(t)
	want, _ := s.dataset(t)
	dir := t.TempDir()
	o := opts()
	o.noXattrs = true
	if _, err := Run(t.Context(), s.b, dir, o); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, want)
	gets, heads := s.counts.Requests(metered.Get), s.counts.Requests(metered.Head)
	res, err := Run(t.Context(), s.b, dir, o)
	if err != nil || res.UpToDate != 6 {
		t.Fatalf("re-run without xattrs: %+v, %v", res, err)
	}
	if s.counts.Requests(metered.Get) != gets || s.counts.Requests(metered.Head) != heads {
		t.Error("re-run without xattrs made GET or HEAD requests")
	}
	if err := os.Truncate(filepath.Join(dir, "a.txt"), 2); err != nil {
		t.Fatal(err)
	}
	if res, err := Run(t.Context(), s.b, dir, o); err != nil || res.Fetched != 1 {
		t.Errorf("repair without xattrs: %+v, %v", res, err)
	}
	sameTree(t, dir, want)
}

func TestLocked(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := Run(t.Context(), s.b, dir, opts()); !errors.Is(err, ErrLocked) {
		t.Errorf("second load: %v", err)
	}
}

// TestJournalOfAnotherBootIsNotTrusted: parts journaled without an fsync
// are reused only within their boot; after a reboot (a journal naming
// another boot id) the object is fetched afresh, never assembled from bytes
// a crash may have lost.
func TestJournalOfAnotherBootIsNotTrusted(t *testing.T) {
	s := newStore(t)
	big := random(t, 6*part)
	s.put(t, "big.bin", big, time.Now(), "")
	dir := t.TempDir()
	interrupted(t, s, dir, "big.bin", 3)
	_, journal := workNames("big.bin")
	j := loadJournal(mustRoot(t, dir), journal)
	if j == nil || len(j.Done) < 3 || j.Synced != (bootID() == "") || j.Boot != bootID() {
		t.Fatalf("journal after the interrupted run: %+v (boot %q)", j, bootID())
	}
	j.Boot = "another-boot"
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, journal), b, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), s.b, dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, map[string][]byte{"big.bin": big})
	if res.Bytes != int64(len(big)) {
		t.Errorf("re-run after a reboot fetched %d bytes, want all %d", res.Bytes, len(big))
	}
}

func TestJournalTrusted(t *testing.T) {
	for _, c := range []struct {
		j    partJournal
		boot string
		want bool
	}{
		{partJournal{Boot: "b1"}, "b1", true},
		{partJournal{Boot: "b1"}, "b2", false},
		{partJournal{}, "", false},
		{partJournal{Synced: true}, "b2", true},
	} {
		if got := c.j.trusted(c.boot); got != c.want {
			t.Errorf("%+v trusted(%q) = %v, want %v", c.j, c.boot, got, c.want)
		}
	}
}

func mustRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// dirsListed is the number of LIST requests a listing of b makes: one per
// directory, the prefix itself and every "dir/" above a key.
func dirsListed(t *testing.T, b backends.Backend) int64 {
	dirs := map[string]bool{"": true}
	for e, err := range b.List(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range e.Key {
			if c == '/' {
				dirs[e.Key[:i+1]] = true
			}
		}
	}
	return int64(len(dirs))
}

// gated is a store whose GETs are recorded in call order and counted while
// in flight (from the call to the body's Close), and whose GET of part 0
// of hold waits until release is closed.
type gated struct {
	backends.Backend
	hold    string
	release chan struct{}
	onGet   func(key string, off int64)

	mu                  sync.Mutex
	calls               []string // GUARDED_BY(mu): "key@part"
	inFlight, maxFlight int      // GUARDED_BY(mu)
}

func (g *gated) GetRange(ctx context.Context, key string, off, n int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	g.mu.Lock()
	g.calls = append(g.calls, fmt.Sprintf("%s@%d", key, off/part))
	g.inFlight++
	g.maxFlight = max(g.maxFlight, g.inFlight)
	g.mu.Unlock()
	done := func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}
	g.onGet(key, off)
	if key == g.hold && off == 0 {
		select {
		case <-g.release:
		case <-ctx.Done():
			done()
			return nil, backends.ObjectInfo{}, ctx.Err()
		}
	}
	rc, info, err := g.Backend.GetRange(ctx, key, off, n, opts)
	if err != nil {
		done()
		return nil, info, err
	}
	return &closeHook{ReadCloser: rc, done: sync.OnceFunc(done)}, info, nil
}

type closeHook struct {
	io.ReadCloser
	done func()
}

func (c *closeHook) Close() error {
	c.done()
	return c.ReadCloser.Close()
}

// While the first part of a large object is stuck, the slots its other
// parts free go to the next object (not all of them idle until the first
// object is done), the next object starts only once the first has all its
// parts under way, and GETs in flight never exceed Concurrency.
func TestFreedSlotsGoToTheNextObject(t *testing.T) {
	s := newStore(t)
	want := map[string][]byte{"a.bin": random(t, 4*part), "b.bin": random(t, 4*part-5), "c.bin": random(t, 1000)}
	for k, v := range want {
		s.put(t, k, v, time.Now(), "")
	}
	release := make(chan struct{})
	var bGets int
	g := &gated{Backend: s.b, hold: "a.bin", release: release}
	var mu sync.Mutex
	g.onGet = func(key string, off int64) {
		mu.Lock()
		defer mu.Unlock()
		if key == "b.bin" {
			if bGets++; bGets == 4 {
				close(release)
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	o := opts()
	o.Concurrency = 2
	dir := t.TempDir()
	if _, err := Run(ctx, g, dir, o); err != nil {
		t.Fatalf("%v (GETs: %v)", err, g.calls)
	}
	sameTree(t, dir, want)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxFlight > 2 {
		t.Errorf("%d GETs in flight at once, want at most 2", g.maxFlight)
	}
	firstB := slices.Index(g.calls, "b.bin@0")
	for _, c := range []string{"a.bin@0", "a.bin@1", "a.bin@2", "a.bin@3"} {
		if i := slices.Index(g.calls, c); i < 0 || i > firstB {
			t.Errorf("GET %s came after b.bin's first (calls %v): objects must start in order", c, g.calls)
		}
	}
	if i := slices.Index(g.calls, "c.bin@0"); i < slices.Index(g.calls, "b.bin@3") {
		t.Errorf("c.bin was fetched before b.bin had all its parts under way (calls %v)", g.calls)
	}
}

// nvmeOnly is a real store whose listings and reads report, as S3 does for
// objects uploaded by recent AWS SDKs, a CRC64NVME as the only checksum:
// sums[key], computed by the test from the bytes it stored.
type nvmeOnly struct {
	backends.Backend
	sums map[string][]byte
}

func (n nvmeOnly) only(info backends.ObjectInfo) backends.ObjectInfo {
	info.Checksums = backends.Checksums{CRC64NVME: n.sums[info.Key]}
	return info
}

func (n nvmeOnly) ListDir(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		for e, err := range n.Backend.ListDir(ctx, prefix) {
			if !e.IsPrefix {
				e.ObjectInfo = n.only(e.ObjectInfo)
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

func (n nvmeOnly) List(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		for e, err := range n.Backend.List(ctx, prefix) {
			e.ObjectInfo = n.only(e.ObjectInfo)
			if !yield(e, err) {
				return
			}
		}
	}
}

func (n nvmeOnly) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	info, err := n.Backend.Stat(ctx, key)
	return n.only(info), err
}

func (n nvmeOnly) GetRange(ctx context.Context, key string, off, length int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	rc, info, err := n.Backend.GetRange(ctx, key, off, length, opts)
	return rc, n.only(info), err
}

// An object whose only checksum is a CRC64NVME is verified with it, large
// (parts combined) or small, and the snapshot records it; a wrong one is
// fetched again once and then fails the object with ErrChecksum.
func TestVerifiesCRC64NVME(t *testing.T) {
	s := newStore(t)
	want := map[string][]byte{"big.bin": random(t, 5*part+77), "small.txt": []byte("crc64nvme")}
	st := nvmeOnly{Backend: s.b, sums: map[string][]byte{}}
	tab := crc64.MakeTable(objread.NVMePoly)
	for k, v := range want {
		s.put(t, k, v, time.Now(), "")
		st.sums[k] = binary.BigEndian.AppendUint64(nil, crc64.Checksum(v, tab))
	}
	var mu sync.Mutex
	verified := map[string]string{}
	o := opts()
	o.Notify = func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == EventFetched {
			verified[e.Key] = e.Msg
		}
	}
	dir := t.TempDir()
	res, err := Run(t.Context(), st, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, want)
	for k := range want {
		if !strings.Contains(verified[k], "verified crc64nvme") {
			t.Errorf("%s: %q, want it verified with crc64nvme", k, verified[k])
		}
	}
	if len(res.Loaded.Objects) != len(want) {
		t.Errorf("manifest of %d objects, want %d", len(res.Loaded.Objects), len(want))
	}
	for _, m := range res.Loaded.Objects {
		if !bytes.Equal(m.Checksums.CRC64NVME, st.sums[m.Key]) {
			t.Errorf("manifest entry %+v lacks the CRC64NVME", m)
		}
	}

	st.sums["big.bin"] = binary.BigEndian.AppendUint64(nil, crc64.Checksum([]byte("other"), tab))
	dir = t.TempDir()
	_, err = Run(t.Context(), st, dir, opts())
	if !errors.Is(err, ErrFailed) || !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), "crc64nvme") {
		t.Fatalf("wrong CRC64NVME: %v; want ErrFailed and ErrChecksum naming crc64nvme", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "big.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("big.bin with a wrong checksum was put in place: %v", err)
	}
}

// statBarrier is a store whose Stat calls wait until n of them are in
// flight together.
type statBarrier struct {
	backends.Backend
	n       int
	mu      sync.Mutex
	waiting int // GUARDED_BY(mu)
	all     chan struct{}
}

func (s *statBarrier) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	s.mu.Lock()
	if s.waiting++; s.waiting == s.n {
		close(s.all)
	}
	s.mu.Unlock()
	select {
	case <-s.all:
	case <-ctx.Done():
		return backends.ObjectInfo{}, ctx.Err()
	}
	return s.Backend.Stat(ctx, key)
}

// Empty files cost one HEAD each, for their metadata, and those run up to
// Concurrency at once: an object that makes one request only lets the next
// one start as soon as it has its slot.
func TestEmptyFilesStatConcurrently(t *testing.T) {
	s := newStore(t)
	want := map[string][]byte{}
	for i := range 4 {
		k := fmt.Sprintf("empty-%d", i)
		s.put(t, k, nil, time.Now(), "")
		want[k] = []byte{}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	if _, err := Run(ctx, &statBarrier{Backend: s.b, n: 4, all: make(chan struct{})}, dir, opts()); err != nil {
		t.Fatalf("%v: the 4 HEADs did not run at once with Concurrency 4", err)
	}
	sameTree(t, dir, want)
}

// listGate is a store whose listing of directory later waits until an
// object has been fetched.
type listGate struct {
	backends.Backend
	later   string
	fetched chan struct{}
	once    sync.Once
}

func (g *listGate) ListDir(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		if prefix == g.later {
			select {
			case <-g.fetched:
			case <-ctx.Done():
				yield(backends.Entry{}, ctx.Err())
				return
			}
		}
		for e, err := range g.Backend.ListDir(ctx, prefix) {
			if !yield(e, err) {
				return
			}
		}
	}
}

func (g *listGate) GetRange(ctx context.Context, key string, off, n int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	g.once.Do(func() { close(g.fetched) })
	return g.Backend.GetRange(ctx, key, off, n, opts)
}

// The transfer starts with the first directory listed: here the listing
// of b/ cannot finish before a GET, which a run that lists everything
// first would never make (its context's deadline would end it). (The
// last key of a directory waits for the next key, which says whether it
// is also a directory; a/x1 does not.)
func TestFetchesWhileListing(t *testing.T) {
	s := newStore(t)
	want := map[string][]byte{"a/x1": random(t, 100), "a/x2": random(t, 10), "b/y": random(t, 200)}
	for k, v := range want {
		s.put(t, k, v, time.Now(), "")
	}
	want["a/"], want["b/"] = nil, nil
	g := &listGate{Backend: s.b, later: "b/", fetched: make(chan struct{})}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	res, err := Run(ctx, g, dir, opts())
	if err != nil || res.Fetched != 3 {
		t.Fatalf("%+v, %v; want every object fetched, the first while b/ was being listed", res, err)
	}
	sameTree(t, dir, want)
}

// failingList is a store whose listing of directory bad fails.
type failingList struct {
	backends.Backend
	bad string
}

var errListing = errors.New("listing refused")

func (f failingList) ListDir(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	if prefix == f.bad {
		return func(yield func(backends.Entry, error) bool) { yield(backends.Entry{}, errListing) }
	}
	return f.Backend.ListDir(ctx, prefix)
}

// A listing that fails part-way through a streamed run fails the run with
// that error and deletes nothing, even with Delete (the listing is
// incomplete); a re-run against a healthy store completes the directory
// and leaves no work directory behind.
func TestListingFailsMidRun(t *testing.T) {
	s := newStore(t)
	want := map[string][]byte{"a/x1": random(t, 100), "a/x2": random(t, 10), "b/y": random(t, 200)}
	for k, v := range want {
		s.put(t, k, v, time.Now(), "")
	}
	dir := t.TempDir()
	local := filepath.Join(dir, "local-only")
	if err := os.WriteFile(local, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := opts()
	o.Delete = true
	if _, err := Run(t.Context(), failingList{Backend: s.b, bad: "b/"}, dir, o); !errors.Is(err, errListing) {
		t.Fatalf("run with a failing listing: %v, want the listing's error", err)
	}
	if _, err := os.Stat(local); err != nil {
		t.Fatalf("a file not in the store was deleted after an incomplete listing: %v", err)
	}
	res, err := Run(t.Context(), s.b, dir, o)
	if err != nil || res.Deleted != 1 {
		t.Fatalf("re-run: %+v, %v; want success deleting local-only", res, err)
	}
	want["a/"], want["b/"] = nil, nil
	sameTree(t, dir, want)
}
