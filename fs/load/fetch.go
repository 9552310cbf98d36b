package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/objread"
)

// errVanished: the object was deleted from the store during the run.
var errVanished = errors.New("object deleted from the store during the run")

// fileItem is one object to materialise as a file.
type fileItem struct {
	obj    backends.ObjectInfo // as listed (Version pinned by a manifest in replay)
	path   string              // relative destination path
	reason string              // why it is fetched ("missing", ...); "" when up to date
	rec    *record             // what the file holds once loaded (or already held)
	// blocked is the directory above path that a file is in the way of
	// (Delete off), or "": the item then fails.
	blocked string
	// exact: replay of an object changed since the manifest; every read
	// asks for obj.Version with backends.ReadOptions.Exact (see replay.go).
	exact bool
}

// fetch materialises one object, retrying once from scratch after a
// checksum mismatch, and once with the store's current object when the
// listed version was replaced or deleted meanwhile (not in replay, where
// the version is fixed). A cancelled ctx leaves the temporary file and
// journal in place for the next run. dispatched is called once the
// object needs no more request slots than those it holds (see transfer).
func (r *runner) fetch(ctx context.Context, it *fileItem, dispatched func()) error {
	info := it.obj
	var counted atomic.Int64 // progress bytes of the current attempt
	for attempt := 1; ; attempt++ {
		rec, err := r.fetchOnce(ctx, it, info, dispatched, &counted)
		if err == nil {
			it.rec = &rec
			return nil
		}
		if it.exact && errors.Is(err, backends.ErrPrecondition) {
			return fmt.Errorf("%w: version %s: %w", ErrSnapshotChanged, info.Version, err)
		}
		if ctx.Err() != nil || attempt == 2 {
			return err
		}
		switch {
		case errors.Is(err, backends.ErrChecksum):
			r.notify(Event{Level: slog.LevelWarn, Kind: EventRetry, Key: info.Key, Path: it.path,
				Msg: it.path + ": checksum mismatch, fetching it again", Err: err})
		case (errors.Is(err, backends.ErrPrecondition) || errors.Is(err, backends.ErrNotExist)) && !r.opts.replay():
			var cur backends.ObjectInfo
			serr := r.inSlot(ctx, nil, func() (err error) {
				cur, err = r.b.Stat(ctx, info.Key)
				return err
			})
			if errors.Is(serr, backends.ErrNotExist) {
				return errVanished
			}
			if serr != nil {
				return serr
			}
			r.notify(Event{Level: slog.LevelInfo, Kind: EventRetry, Key: info.Key, Path: it.path,
				Msg: it.path + ": object replaced during the run, fetching the new version"})
			info = cur
		default:
			return err
		}
		if err := removeWork(r.root, info.Key); err != nil {
			return err
		}
		r.tracker.AddBytes(-counted.Swap(0))
	}
}

// fetchOnce downloads info into the object's temporary file (resuming from
// its journal when that names the same version), verifies it, gives it its
// mtime, mode and record, and renames it into place.
func (r *runner) fetchOnce(ctx context.Context, it *fileItem, info backends.ObjectInfo, dispatched func(), counted *atomic.Int64) (record, error) {
	partName, journalName := workNames(info.Key)
	size := info.Size
	nparts := r.nparts(size)

	// attrs is the object as a Stat or GET returned it (user metadata,
	// checksums, version id), which a listing may lack.
	var attrs *backends.ObjectInfo
	if size == 0 || (nparts >= 2 && info.Checksums.IsZero()) {
		var then func() // an empty object makes this request only
		if size == 0 {
			then = dispatched
		}
		st, err := r.stat(ctx, info, it.exact, then)
		if err != nil {
			return record{}, err
		}
		attrs = &st
		info.Checksums = st.Checksums
	}
	capt := &capture{Backend: r.b, exact: it.exact}
	obj := objread.Open(capt, info, r.readOpts(size))

	done := map[int]bool{}
	if nparts >= 2 {
		if j := loadJournal(r.root, journalName); j != nil && j.Key == info.Key && j.Size == size &&
			sameVersion(j.Version, info.Version) && j.trusted(r.boot) && r.partFileSize(partName) == size {
			covered := j.covered(size, r.opts.PartSize)
			for i := range nparts {
				if covered(i) {
					done[i] = true
				}
			}
		}
	}
	var un *unnamed // the file, when unnamed (see unnamed.go)
	if nparts < 2 && it.reason == "missing" {
		u, err := r.openUnnamed(filepath.Dir(it.path))
		if err != nil {
			return record{}, err
		}
		un = u
	}
	var f *os.File
	if un != nil {
		f = un.f
		defer un.close()
	} else {
		flags := os.O_RDWR | os.O_CREATE
		if len(done) == 0 {
			flags |= os.O_TRUNC
		}
		nf, err := r.root.OpenFile(partName, flags, 0o644)
		if err != nil {
			return record{}, err
		}
		f = nf
		defer f.Close() // after the rename it is a no-op error
	}
	if err := f.Truncate(size); err != nil {
		return record{}, err
	}
	var dst io.WriterAt = f
	if un == nil && nparts >= 2 && !objread.ReadsBack(info.Checksums) {
		d, err := r.openDirect(partName, f, size)
		if err != nil {
			return record{}, err
		}
		if d != nil {
			defer d.Close()
			dst = d
		}
	}
	var jw *journalWriter
	if nparts >= 2 {
		j := partJournal{Key: info.Key, Version: info.Version, Size: size, PartSize: r.opts.PartSize,
			Boot: r.boot, Synced: r.boot == ""}
		for i := range nparts {
			if done[i] {
				j.Done = append(j.Done, i)
			}
		}
		jw = newJournalWriter(r.root, journalName, f, j)
		if err := jw.save(); err != nil {
			return record{}, err
		}
		if len(done) > 0 {
			r.notify(Event{Level: slog.LevelInfo, Kind: EventResume, Key: info.Key, Path: it.path,
				Msg: fmt.Sprintf("%s: resuming, %d of %d parts already here", it.path, len(done), nparts)})
		}
	}

	dl := objread.DownloadOptions{
		Done: func(i int) bool {
			if done[i] {
				_, n := obj.Part(i)
				r.tracker.AddBytes(n)
				counted.Add(n)
			}
			return done[i]
		},
		OnBytes:    func(n int64) { r.tracker.AddBytes(n); counted.Add(n) },
		Slots:      r.slots,
		Dispatched: dispatched,
		Verify:     true,
	}
	if jw != nil {
		dl.OnPart = func(i int, _ int64) error {
			if err := jw.partDone(i); err != nil {
				return err
			}
			r.notify(Event{Level: slog.LevelDebug, Kind: EventPart, Key: info.Key, Path: it.path,
				Msg: fmt.Sprintf("%s: part %d of %d on disk", it.path, i+1, nparts)})
			return nil
		}
	}
	res, err := obj.Download(ctx, dst, dl)
	r.fetched.Add(res.Fetched)
	if err != nil {
		return record{}, err
	}

	if attrs == nil {
		if served, ok := capt.served(); ok {
			attrs = &served
		} else {
			st, err := r.stat(ctx, info, it.exact, nil) // every part was already here
			if err != nil {
				return record{}, err
			}
			attrs = &st
		}
	}
	sums, err := r.verify(ctx, f, info, *attrs, res)
	if err != nil {
		return record{}, err
	}
	rec, err := r.finish(f, un, partName, it, info, *attrs, sums)
	if err != nil {
		return record{}, err
	}
	if jw != nil {
		if err := r.root.Remove(journalName); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return record{}, err
		}
	}
	r.notify(Event{Level: slog.LevelDebug, Kind: EventFetched, Key: info.Key, Path: it.path, Size: size,
		Msg: fmt.Sprintf("%s: fetched (%d bytes, %s)", it.path, size, verifiedText(res, sums))})
	return rec, nil
}

// verifiedText says what an object was verified against: the checksum
// Download checked, else every one objread.Verify checked (all of sums).
func verifiedText(res objread.Result, sums backends.Checksums) string {
	names := res.Checked
	if len(names) == 0 {
		names = objread.Names(sums)
	}
	if len(names) == 0 {
		return "no checksum"
	}
	return "verified " + strings.Join(names, "+")
}

func (r *runner) readOpts(size int64) objread.Options {
	o := objread.Options{
		PartSize:    r.opts.PartSize,
		Concurrency: r.opts.Concurrency, // the run's slots bound it
		Logger:      r.opts.Logger,
	}
	// Objects smaller than a buffer get one of their size (garbage, but
	// small); the others share the run's buffers.
	if size < r.bufSize() {
		o.BufferSize = int(max(size, 1))
	} else {
		o.Buffers = r.bufs
	}
	return o
}

// stat asks the store for the object's attributes, in a request slot
// (then, when set, is called once it has one), and checks that it is still
// the listed version; with exact, for the attributes of exactly
// info.Version, current or not (see exactInfo).
func (r *runner) stat(ctx context.Context, info backends.ObjectInfo, exact bool, then func()) (backends.ObjectInfo, error) {
	var st backends.ObjectInfo
	err := r.inSlot(ctx, then, func() (err error) {
		if exact {
			st, err = r.exactInfo(ctx, info)
		} else {
			st, err = r.b.Stat(ctx, info.Key)
		}
		return err
	})
	if err != nil {
		return st, err
	}
	changed := st.Size != info.Size
	if !info.Version.IsZero() && !sameVersion(st.Version, info.Version) {
		changed = true
	}
	if changed {
		return st, backends.Errorf("stat", r.b.String(), info.Key, backends.ErrPrecondition,
			fmt.Errorf("now version %s of %d bytes, listed as %s of %d bytes", st.Version, st.Size, info.Version, info.Size))
	}
	return st, nil
}

// verify checks the file against the store's checksums when Download could
// not (the listing had none): those of the GET or Stat response in attrs,
// such as an S3 ETag that is an MD5. It returns the checksums the file
// matched, and counts the file as verified (an empty one by its size) or
// unverified. No further request is made for a single-part object whose GET
// carried no checksum: the only store that has more (S3 full-object
// CRC32Cs, through HEAD) rarely has them on objects that small, and a HEAD
// per small file would double the requests.
func (r *runner) verify(ctx context.Context, f *os.File, info, attrs backends.ObjectInfo, res objread.Result) (backends.Checksums, error) {
	if len(res.Checked) > 0 || info.Size == 0 {
		r.verified.Add(1)
		return info.Checksums, nil
	}
	sums := attrs.Checksums
	if sums.IsZero() {
		r.unverified.Add(1)
		r.notify(Event{Level: slog.LevelDebug, Kind: EventUnverified, Key: info.Key,
			Msg: info.Key + ": the store has no checksum for this object: not verified"})
		return sums, nil
	}
	if err := objread.Verify(ctx, f, info.Size, sums); err != nil {
		return sums, fmt.Errorf("verify %q: %w", info.Key, err)
	}
	r.verified.Add(1)
	return sums, nil
}

// finish gives the temporary file its mode, mtime and record and renames it
// to the item's path (or, when un is set, links the unnamed file f there).
func (r *runner) finish(f *os.File, un *unnamed, partName string, it *fileItem, info, attrs backends.ObjectInfo, sums backends.Checksums) (record, error) {
	if attrs.ModTime.IsZero() {
		attrs.ModTime = info.ModTime
	}
	if !info.ModTime.IsZero() {
		attrs.ModTime = info.ModTime // the listing's, which later runs compare with
	}
	mtime, mode := fileTimes(attrs)
	if mtime.IsZero() {
		mtime = time.Now()
	}
	if err := f.Chmod(mode); err != nil {
		return record{}, err
	}
	if un != nil {
		if err := un.chtimes(mtime); err != nil {
			return record{}, err
		}
	} else if err := r.root.Chtimes(partName, mtime, mtime); err != nil {
		return record{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		return record{}, err
	}
	rec := record{
		Version: mergeVersion(info.Version, attrs.Version), Size: info.Size,
		Mtime: fi.ModTime().UnixNano(), Checksums: sums,
	}
	if !info.ModTime.IsZero() {
		rec.ModTime = info.ModTime.UnixNano()
	}
	if r.xattrs.Load() {
		ok, err := writeRecord(f, rec)
		if err != nil {
			return record{}, err
		}
		if !ok && r.xattrs.Swap(false) {
			r.notify(Event{Level: slog.LevelWarn, Kind: EventNoXattr, Path: it.path,
				Msg: "the filesystem has no user extended attributes: re-runs compare size and times only"})
		}
	}
	if un != nil {
		return rec, un.link(filepath.Base(it.path))
	}
	if err := f.Close(); err != nil {
		return record{}, err
	}
	return rec, r.place(partName, it.path)
}

// place renames the finished temporary file to path. A directory in the
// way is removed when empty, or with Delete; otherwise the item fails.
func (r *runner) place(tmp, path string) error {
	err := r.root.Rename(tmp, path)
	if err == nil {
		return nil
	}
	fi, lerr := r.root.Lstat(path)
	if lerr != nil || !fi.IsDir() {
		return err
	}
	if r.opts.Delete {
		if err := r.root.RemoveAll(path); err != nil {
			return err
		}
	} else if err := r.root.Remove(path); err != nil {
		return fmt.Errorf("%s: a directory is in the way (--delete replaces it): %w", path, err)
	}
	return r.root.Rename(tmp, path)
}

// partFileSize is the size of the temporary file name, or -1.
func (r *runner) partFileSize(name string) int64 {
	fi, err := r.root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return -1
	}
	return fi.Size()
}

func fdatasync(f *os.File) error {
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return &fs.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}

// capture is a backend seen by objread that remembers the first GET
// response's attributes (user metadata, checksums, version id), so that no
// Stat is needed for them. With exact it adds backends.ReadOptions.Exact to
// every read, which objread pins to the item's version.
type capture struct {
	backends.Backend
	exact bool
	mu    sync.Mutex
	info  *backends.ObjectInfo // GUARDED_BY(mu)
}

func (c *capture) GetRange(ctx context.Context, key string, off, n int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	opts.Exact = opts.Exact || c.exact
	rc, info, err := c.Backend.GetRange(ctx, key, off, n, opts)
	if err == nil {
		c.mu.Lock()
		if c.info == nil {
			c.info = &info
		}
		c.mu.Unlock()
	}
	return rc, info, err
}

func (c *capture) served() (backends.ObjectInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.info == nil {
		return backends.ObjectInfo{}, false
	}
	return *c.info, true
}
