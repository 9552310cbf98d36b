package mount

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/journal"
	"github.com/ferryio/ferry/fs/objmeta"
	"github.com/ferryio/ferry/fs/store"
)

// WriteOptions make a mount read-write (Options.Write). See the package
// doc, "Read-write".
type WriteOptions struct {
	// Dir holds the staged files and the journal; it must survive a crash
	// for the pending uploads to be completed by the next mount.
	Dir string
	// Target names the store (its URL with the prefix) in the journal: a
	// journal written for another target is refused.
	Target string
	// MtimeFormat is how "mtime" metadata is written.
	MtimeFormat objmeta.MtimeFormat
	// WriteBack delays the upload of a closed file by this long (0: it is
	// uploaded before close returns). fsync always uploads at once.
	WriteBack time.Duration
	// PartSize is the multipart part size (0: store.DefaultPartSize).
	PartSize int64
}

// Sentinel errors of the write path; errnoFor maps them.
var (
	errNotEmpty  = errors.New("directory not empty")
	errExists    = errors.New("file exists")
	errCrossDir  = errors.New("cannot rename a non-empty directory in an object store")
	errNotSupp   = errors.New("operation not supported")
	errConflicts = errors.New("object changed in the store while a local edit was pending")
)

// writer is the write state of a read-write mount: the staged files, by
// key, and the journal that makes them survive a crash.
//
// INVARIANT (whenever mu is not held; see checkInvariants):
//   - every wfile in files is keyed by its key, and its path lies in the
//     staging directory;
//   - a wfile with pending set has a live journal entry for its key whose
//     Source is its path;
//   - a wfile with a timer is pending;
//   - a wfile that is neither dirty nor pending holds the bytes the store
//     holds at its key in the version base.
type writer struct {
	fsys    *filesystem
	j       *journal.Journal
	staging string
	opts    WriteOptions
	upload  store.FileOptions
	log     *slog.Logger
	// ctx is for uploads of the write-back timers; cancelled by close.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	files  map[string]*wfile // GUARDED_BY(mu)
	seq    int64             // GUARDED_BY(mu); names of staging files
	closed bool              // GUARDED_BY(mu)
	timers sync.WaitGroup    // write-back uploads running
}

// Names inside WriteOptions.Dir.
const (
	journalDirName = "journal"
	stagingDirName = "staging"
)

// openWriter opens the journal and the staging directory of o.
func openWriter(f *filesystem, o WriteOptions) (*writer, error) {
	if o.Dir == "" || o.Target == "" {
		return nil, errors.New("mount: read-write needs a staging directory and a target")
	}
	staging := filepath.Join(o.Dir, stagingDirName)
	if err := os.MkdirAll(staging, 0o700); err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	j, err := journal.Open(filepath.Join(o.Dir, journalDirName))
	if err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	meta := j.Meta()
	switch {
	case meta.Target == "":
		err = j.Reset(journal.Meta{Target: o.Target, Created: time.Now().UTC()})
	case meta.Target != o.Target && j.Len() > 0:
		err = fmt.Errorf("mount: the journal in %s holds %d pending uploads for %s, not %s: mount that store with this cache dir first",
			j.Dir(), j.Len(), meta.Target, o.Target)
	case meta.Target != o.Target:
		err = j.Reset(journal.Meta{Target: o.Target, Created: time.Now().UTC()})
	}
	if err != nil {
		j.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &writer{fsys: f, j: j, staging: staging, opts: o, log: f.log, ctx: ctx, cancel: cancel,
		files: map[string]*wfile{},
		upload: store.FileOptions{Store: f.b, MtimeFormat: o.MtimeFormat, PartSize: o.PartSize,
			Concurrency: f.opts.Concurrency, Logger: f.log}}, nil
}

// startWriter opens the write state and completes what an earlier mount
// left pending, logging it.
func startWriter(ctx context.Context, f *filesystem, o WriteOptions) (*writer, error) {
	w, err := openWriter(f, o)
	if err != nil {
		return nil, err
	}
	n, err := w.recover(ctx)
	if err != nil {
		_ = w.close(ctx)
		return nil, err
	}
	if n > 0 {
		w.log.Info("mount: completed the pending work of an earlier mount", "entries", n)
	}
	return w, nil
}

// recover completes what the journal holds from an earlier mount: uploads
// first (each under the conflict rule), then the deletions of renamed and
// removed files, so that a crash between the two never loses a file.
// Staging files no entry refers to are removed. It returns how many
// entries it completed.
func (w *writer) recover(ctx context.Context) (int, error) {
	entries := w.j.Entries()
	used := map[string]bool{}
	n := 0
	for _, e := range entries {
		if e.Source == "" {
			continue
		}
		used[e.Source] = true
		if _, err := os.Stat(e.Source); err != nil {
			w.log.Warn("mount: a pending upload lost its staged file; dropping it", "key", e.Key, "staged", e.Source, "cause", err.Error())
			if err := w.j.Done(e.Key); err != nil {
				return n, err
			}
			continue
		}
		key, _, err := w.store(ctx, e)
		if err != nil {
			return n, fmt.Errorf("mount: completing the upload of %q: %w", e.Key, err)
		}
		w.log.Info("mount: recovered a pending upload", "key", key, "size", e.Size)
		used[e.Source] = false // stored: its staging file goes below
		n++
	}
	for _, e := range entries {
		if e.Source != "" {
			continue
		}
		if err := w.fsys.b.Delete(ctx, e.Key); err != nil {
			return n, fmt.Errorf("mount: completing the removal of %q: %w", e.Key, err)
		}
		if err := w.j.Done(e.Key); err != nil {
			return n, err
		}
		w.log.Info("mount: recovered a pending removal", "key", e.Key)
		n++
	}
	left, err := os.ReadDir(w.staging)
	if err != nil {
		return n, fmt.Errorf("mount: %w", err)
	}
	for _, d := range left {
		if p := filepath.Join(w.staging, d.Name()); !used[p] {
			_ = os.Remove(p)
		}
	}
	return n, w.j.Sync()
}

// store uploads the staged entry e under the conflict rule and marks it
// done: when the object at e.Key is no longer the version e.Base says
// (or exists although e.Base is nil), the bytes go to a sibling conflict
// key instead, and the store's object is left alone. An object that
// already holds the staged bytes (an upload finished before a crash) is
// just marked done. It returns the key the bytes are at.
func (w *writer) store(ctx context.Context, e journal.Entry) (string, backends.ObjectInfo, error) {
	cur, err := w.fsys.b.Stat(ctx, e.Key)
	exists := err == nil
	if err != nil && !errors.Is(err, backends.ErrNotExist) {
		return "", cur, err
	}
	switch {
	case exists && sameSums(cur.Checksums, e.Sums) && cur.Size == e.Size:
		return e.Key, cur, w.done(e.Key)
	case exists && (e.Base == nil || !sameVersion(cur.Version, *e.Base)):
		return w.storeConflict(ctx, e, cur)
	}
	info, err := store.UploadFile(ctx, w.upload, w.j, e, e.Source)
	if err != nil {
		return "", info, err
	}
	return e.Key, info, w.done(e.Key)
}

// storeConflict stores e's bytes at a new sibling key of e.Key and leaves
// the object at e.Key as the store has it.
func (w *writer) storeConflict(ctx context.Context, e journal.Entry, cur backends.ObjectInfo) (string, backends.ObjectInfo, error) {
	ck := conflictKey(e.Key, w.fsys.now())
	w.log.Warn("mount: the object changed in the store while a local edit was pending; the store's version stays, the local edit goes to a conflict copy",
		"key", e.Key, "store_version", cur.Version.String(), "conflict_copy", ck, "cause", errConflicts.Error())
	if e.Upload != nil {
		if mp, ok := w.fsys.b.(backends.Multipart); ok {
			_ = mp.AbortUpload(ctx, *e.Upload)
		}
	}
	c := journal.Entry{Key: ck, Source: e.Source, Size: e.Size, ModTime: e.ModTime, Mode: e.Mode, Sums: e.Sums}
	if err := w.j.Stage(c); err != nil {
		return "", backends.ObjectInfo{}, err
	}
	if err := w.j.Done(e.Key); err != nil {
		return "", backends.ObjectInfo{}, err
	}
	info, err := store.UploadFile(ctx, w.upload, w.j, c, c.Source)
	if err != nil {
		return "", info, err
	}
	w.invalidate(ck)
	return ck, info, w.done(ck)
}

func (w *writer) done(key string) error {
	w.invalidate(key)
	return w.j.Done(key)
}

// conflictKey is the sibling key a conflicting local edit of key goes to.
func conflictKey(key string, now time.Time) string {
	return key + ".conflict-" + now.UTC().Format("20060102T150405.000000000Z")
}

// invalidate drops what the metadata caches know of key and its
// directory's listing.
func (w *writer) invalidate(key string) {
	w.fsys.lookups.Invalidate(strings.TrimSuffix(key, "/"))
	w.fsys.listings.Invalidate(parentDir(key))
}

// parentDir is the directory key ("" or ending in "/") of key.
func parentDir(key string) string {
	k := strings.TrimSuffix(key, "/")
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		return k[:i+1]
	}
	return ""
}

// sameVersion compares the fields both versions carry: the ETag where
// both have one, else the version id.
func sameVersion(a, b backends.Version) bool {
	if a.ETag != "" && b.ETag != "" {
		return a.ETag == b.ETag
	}
	return a.ID != "" && a.ID == b.ID
}

// sameSums reports whether a store's checksums show the file's bytes: at
// least one known checksum, and all known ones equal.
func sameSums(got, want backends.Checksums) bool {
	known := false
	for _, p := range [][2][]byte{{got.MD5, want.MD5}, {got.CRC32C, want.CRC32C}} {
		if len(p[0]) == 0 || len(p[1]) == 0 {
			continue
		}
		if string(p[0]) != string(p[1]) {
			return false
		}
		known = true
	}
	return known
}

// close uploads what write-back still holds, then closes the journal and
// removes the staged files that are not pending. Later calls do nothing.
func (w *writer) close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	var due []*wfile
	for _, wf := range w.files {
		if wf.timer != nil {
			w.stopTimerLocked(wf)
			due = append(due, wf)
		}
	}
	w.mu.Unlock()
	w.timers.Wait()
	var errs []error
	for _, wf := range due {
		if err := w.uploadPending(ctx, wf); err != nil {
			errs = append(errs, err)
		}
	}
	w.cancel()
	w.mu.Lock()
	for _, wf := range w.files {
		if !wf.pending && !wf.dirty {
			wf.f.Close()
			_ = os.Remove(wf.path)
		}
	}
	w.mu.Unlock()
	if err := w.j.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// baseOf returns the base version of key's staged file (nil: a file not
// yet in the store), and whether key is staged.
func (w *writer) baseOf(key string) (*backends.Version, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wf := w.files[key]
	if wf == nil {
		return nil, false
	}
	if wf.base == nil {
		return nil, true
	}
	v := *wf.base
	return &v, true
}

// fsMode is the permission bits of a FUSE mode as an fs.FileMode.
func fsMode(mode uint32) iofs.FileMode { return iofs.FileMode(mode & 0o777) }

// checkInvariants verifies the INVARIANT list (tests call it).
func (w *writer) checkInvariants() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, wf := range w.files {
		if wf.key != k {
			return fmt.Errorf("file staged for %q is filed under %q", wf.key, k)
		}
		if filepath.Dir(wf.path) != w.staging {
			return fmt.Errorf("%q is staged outside %s: %s", k, w.staging, wf.path)
		}
		if wf.pending {
			if e, ok := w.j.Entry(k); !ok || e.Source != wf.path {
				return fmt.Errorf("%q is pending without its journal entry", k)
			}
		}
		if wf.timer != nil && !wf.pending {
			return fmt.Errorf("%q has a write-back timer but is not pending", k)
		}
	}
	return nil
}
