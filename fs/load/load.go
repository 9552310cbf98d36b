// Package load materialises every object under a store prefix as a file of
// a destination directory (ferry load, load.sh): idempotent, resumable
// after a kill at any moment, parallel, verified, with bounded memory.
//
// # Mapping
//
// Keys go through fs/namespace, as the mount's do: key "a/b" becomes the
// file DIR/a/b, a "dir/" marker an (empty) directory, a zero-byte object an
// empty file (one HEAD, for its metadata). Directories get no mtime or
// mode from the store: writing their files would change them anyway. Keys namespace refuses (a ".." or "." or empty segment, an
// absolute key, NUL, a segment over 255 bytes, a key that is both a file and
// a directory prefix) and keys under WorkDir are never written: Run reports
// each by name and loads everything else (ErrInvalidKeys). Every filesystem
// call goes through an os.Root of the destination, so no path, symlink
// included, leads outside it.
//
// # Atomic files and the record of what they hold
//
// An object is downloaded into WorkDir/<hash>.part, verified, given its
// mtime (the "mtime" user metadata rclone writes, or gsutil's, else the
// store's Last-Modified) and mode (the "mode" metadata, else 0644), then
// renamed to its path: a file appears only complete and verified. A
// single-part object whose file is missing is written instead to an
// unnamed file (O_TMPFILE) in its own directory and linked to its path
// once done (see unnamed.go): a kill leaves nothing behind. Before
// the rename the file gets an extended attribute, XattrName, recording the
// object's version, size and checksums and the mtime given (see record).
// A re-run compares the listing (size, ETag or generation) and the file
// (size, mtime) with that record, so a complete destination costs listing
// requests only: no GET, no HEAD per object. A file whose size or mtime
// changed, or whose object changed, is fetched again.
//
// Fallback: on a filesystem without user extended attributes a file is up
// to date when its size matches and its mtime is the object's mtime from
// the listing's metadata, or else the listing's Last-Modified, or else (S3
// listings carry no metadata) its ctime is not older than the object's
// Last-Modified. That misses a local change that keeps size and mtime and,
// for objects with an mtime in their metadata on S3, a local change that
// keeps the size.
//
// # Resume
//
// An object of two parts or more (PartSize each) keeps, next to its
// temporary file, a journal WorkDir/<hash>.json: the version being
// fetched and the parts complete (trusted within the same boot, since a
// killed process leaves its bytes in the page cache; see partJournal). A
// run that finds a journal naming the listed version fetches only the
// missing parts (objread.DownloadOptions
// Done); one naming another version (the object was replaced) starts the
// object afresh. A single-part object restarts from zero. On success
// WorkDir is removed and the filesystem synced (syncfs), so the
// destination holds exactly the dataset. A worker journals its part (group
// commit) before it fetches the next, so a kill loses at most the parts in
// flight: Concurrency x PartSize bytes. Parts are written with O_DIRECT
// where the filesystem allows it (see direct.go).
//
// # Concurrency and memory
//
// Up to Concurrency requests run at once, shared by all objects through
// one semaphore of request slots: each ranged GET (one per part, or one
// for a small object) takes a slot and gives it back as soon as its part
// is on disk and journaled, and so does each HEAD. The listing and the
// transfer overlap: a file is handed to the transfer as soon as its
// directory is listed and it is compared with the destination, so GETs
// start with the first directory listed (a dry run, which only reports,
// and a replay, which checks every pinned version before it writes, list
// everything first, and then fetch large objects first). Objects start in
// listing order, each only once the one before has all its requests under
// way: an object gets only
// the slots the earlier ones cannot use, while their last parts drain and
// while they are verified, so objects finish about in order and a kill
// leaves few of them half-done. At most Concurrency objects are in flight
// (fetching, verifying or being renamed into place). Each GET streams
// into its file through one copy buffer of min(128 KiB, PartSize)
// (objects smaller than that get a buffer of their size), taken from a
// free list the whole run shares, so buffers are reused from object to
// object rather than left to the GC. An object whose bytes are read back
// for verification (MD5, or parts kept from an earlier run; see below)
// takes one more buffer while it reads. Copy buffers are therefore at most
// 2 x Concurrency x min(128 KiB, PartSize) (one per GET in flight, one per
// object in flight): 4 MiB at the defaults, half that when the store gives
// CRCs and nothing is resumed, whatever the objects' sizes. The plan holds
// every listed key (a few hundred bytes per object) and each large object
// in flight a journal of its parts; the rest is the store's client.
// Measured on 4 x 256 MiB from MinIO (ferry load, static binary): peak RSS
// 37 MiB (44-49 before the build left out the GCS client's gRPC
// balancers), most of it the executable's own pages (code and tables
// touched by the SDKs' package initialisation: a no-op run peaks at
// 30 MiB), the rest anonymous memory (Go heap with its GC headroom, the
// runtime, the buffers).
//
// # Verification
//
// Each object is checked against the store's checksums: those of the
// listing (GCS CRC32C and MD5, Azure Content-MD5, the local driver's
// recorded sums), else, for objects of several parts, of one HEAD before
// the download (S3 full-object CRC32C, CRC32 or CRC64NVME, or an ETag that
// is an MD5), else of the GET response (an S3 single-part ETag that is an
// MD5). Of several, the download checks the cheapest: CRC32C, CRC32,
// CRC64NVME, then MD5. A CRC is computed in flight, part by part as the
// bytes are written, and the parts' CRCs combined into the object's (the
// CRC64NVME, without hardware help, at 1-2 GB/s on one core, still well
// ahead of MD5): no byte is read back, except
// those of parts kept from an earlier run, which are read back and hashed
// (only those), so a resumed object is still verified whole. An MD5 is
// computed by reading the file back in order as the download proceeds (see
// objread.Object.Download). A mismatch is fetched again once, then fails
// the object. Objects verified are counted in Result.Verified, those the
// store has no checksum for in Result.Unverified.
//
// # Snapshots
//
// Result.Loaded is a Manifest of what the destination holds (key, size,
// version, checksums); WriteManifest saves it and gives its digest. Its
// version ids are those of the versions the files hold: for a file fetched
// in the run, the GET (or HEAD) response's, which on a versioned S3 bucket
// carries the version id that S3 listings lack; for a file already up to
// date, its record's (which keeps that id from the run that fetched it).
// An entry has no version id when the store has none (unversioned S3
// buckets, az, local), and on S3 also when the file was up to date on a
// filesystem without user extended attributes (then only the listing,
// which has no ids, is known).
//
// With Options.Manifest, Run loads exactly that snapshot (keys it does not
// name are ignored): an object changed or gone since is read at its
// recorded version id (backends.ReadOptions.Exact) where the store keeps
// that version; with no id, or a version the store no longer holds, the
// run fails with ErrSnapshotChanged naming each such key before anything
// is fetched or deleted. Details in replay.go. A re-run over a destination
// that holds the snapshot costs the listing only.
//
// # Dry run
//
// With DryRun, Run lists the store and scans the destination, reports each
// fetch, repair, directory and (with Delete) deletion as an EventWould, and
// returns ErrChanges when there is any; it creates, changes and locks
// nothing and makes no GET or HEAD.
//
// One load runs per destination at a time (an flock on the directory).
package load

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/namespace"
	"github.com/ferryio/ferry/fs/objread"
	"github.com/ferryio/ferry/fs/progress"
)

// Defaults and limits of Options.
const (
	DefaultConcurrency = 16
	DefaultPartSize    = 8 << 20
	MinPartSize        = 64 << 10
	maxBuffer          = objread.DefaultBufferSize
)

// Sentinel errors of Run; test them with errors.Is.
var (
	// ErrInvalidKeys: some keys could not be mapped to safe paths; the rest
	// was loaded. Result.Invalid names them.
	ErrInvalidKeys = errors.New("some object keys cannot be loaded")
	// ErrReservedKey: a key under WorkDir. It matches
	// namespace.ErrUnsafeKey too.
	ErrReservedKey = fmt.Errorf("%w (reserved)", namespace.ErrUnsafeKey)
	// ErrFailed: some objects could not be loaded (the error joins theirs).
	ErrFailed = errors.New("some objects failed to load")
	// ErrChanges: a dry run found work to do.
	ErrChanges = errors.New("the destination is not up to date")
	// ErrSnapshotChanged: in replay, objects of the manifest are gone or
	// changed in the store, and the store cannot serve their recorded
	// version (the manifest has no version id, or the store no longer
	// holds it); nothing was loaded. Should a recorded version vanish
	// during the run, that object fails with an error matching both
	// ErrFailed and ErrSnapshotChanged.
	ErrSnapshotChanged = errors.New("the store no longer holds the manifest's snapshot")
	// ErrLocked: another load is running on the destination.
	ErrLocked = errors.New("another ferry load is running on this directory")
)

// Options tune Run. The zero value loads with the defaults.
type Options struct {
	// Concurrency is the number of GETs in flight; default
	// DefaultConcurrency.
	Concurrency int
	// PartSize is the size of the ranged GETs of large objects and the
	// unit of resume; default DefaultPartSize, at least MinPartSize.
	PartSize int64
	// Delete removes local files and directories that are not in the store
	// (or the manifest), and directories in the way of files.
	Delete bool
	// DryRun changes nothing: Run reports what it would do as events and
	// returns ErrChanges when there is something to do.
	DryRun bool
	// Manifest, when set, loads exactly that snapshot (see Manifest).
	Manifest *Manifest
	// Tracker receives progress; nil for none.
	Tracker *progress.Tracker
	// Notify receives events (warnings, per-object lines); it is called
	// from several goroutines at once. nil drops them.
	Notify func(Event)
	// Logger receives objread's retry lines (debug); nil for none.
	Logger *slog.Logger

	// noXattrs behaves as on a filesystem without user extended
	// attributes (for tests: every filesystem at hand has them).
	noXattrs bool
	// noUnnamed behaves as on a filesystem without O_TMPFILE (tests).
	noUnnamed bool
	// noDirect writes multi-part files through the page cache, as on a
	// filesystem without O_DIRECT (tests).
	noDirect bool
}

func (o Options) replay() bool { return o.Manifest != nil }

// Event kinds.
const (
	EventInvalidKey = "invalid_key" // a key that cannot be loaded (warning)
	EventWould      = "would"       // dry run: an action it would take
	EventDeleted    = "deleted"     // Delete removed a path
	EventFetched    = "fetched"     // an object was loaded (debug)
	EventPart       = "part"        // a part of a large object is on disk (debug)
	EventResume     = "resume"      // a large object resumes from its journal
	EventRetry      = "retry"       // an object is fetched again
	EventUnverified = "unverified"  // the store has no checksum (debug)
	EventNoXattr    = "no_xattr"    // the filesystem lacks extended attributes
	EventVanished   = "vanished"    // the object was deleted during the run
	EventFailed     = "failed"      // an object failed
)

// Event is one thing worth telling the user.
type Event struct {
	Level slog.Level
	Kind  string
	Key   string // the object key, when about one
	Path  string // the relative path, when about one
	Size  int64
	Msg   string
	Err   error
}

// Result reports a run.
type Result struct {
	Files, Dirs int // in the dataset (loadable keys)
	UpToDate    int // files that needed nothing
	Fetched     int // files fetched (or, dry run, to fetch)
	Failed      int
	Deleted     int   // paths removed (or, dry run, to remove)
	Bytes       int64 // object bytes downloaded by this run
	Verified    int   // fetched files that matched a checksum of the store (empty ones: their size)
	Unverified  int   // fetched files the store had no checksum for
	Invalid     []error
	// Loaded is what the destination holds, for --manifest-out; nil after
	// a dry run or when objects failed.
	Loaded *Manifest
}

type runner struct {
	b      backends.Backend
	dir    string
	root   *os.Root // nil in a dry run of a missing destination
	opts   Options
	xattrs atomic.Bool // false once the filesystem refused one
	// noUnnamed: the destination has no unnamed files (see unnamed.go).
	noUnnamed atomic.Bool
	boot      string // the kernel's boot id, "" if unknown (see partJournal)

	bufs       *objread.Buffers    // the copy buffers of every download
	slots      *semaphore.Weighted // requests in flight during transfer: Concurrency
	tracker    *progress.Tracker
	fetched    atomic.Int64
	verified   atomic.Int64
	unverified atomic.Int64
}

// Run loads every object of b (a store seen through its prefix) into dir,
// creating dir if needed. See the package documentation for the contract.
// Its error wraps ErrInvalidKeys, ErrFailed, ErrChanges, ErrSnapshotChanged
// or ErrLocked, or is the listing's or the filesystem's; the Result is
// filled as far as the run went.
func Run(ctx context.Context, b backends.Backend, dir string, opts Options) (Result, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.PartSize <= 0 {
		opts.PartSize = DefaultPartSize
	}
	opts.PartSize = max(opts.PartSize, MinPartSize)
	r := &runner{b: b, dir: dir, opts: opts, tracker: opts.Tracker, boot: bootID()}
	r.bufs = objread.NewBuffers(int(r.bufSize()), 2*opts.Concurrency)
	r.slots = semaphore.NewWeighted(int64(opts.Concurrency))
	if r.tracker == nil {
		r.tracker = &progress.Tracker{}
	}
	r.xattrs.Store(!opts.noXattrs)
	r.noUnnamed.Store(opts.noUnnamed)
	if !opts.DryRun {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Result{}, err
		}
		unlock, err := lockDir(dir)
		if err != nil {
			return Result{}, err
		}
		defer unlock()
	}
	if root, err := os.OpenRoot(dir); err == nil {
		r.root = root
		defer root.Close()
	} else if !opts.DryRun || !errors.Is(err, fs.ErrNotExist) {
		return Result{}, err
	}
	return r.run(ctx)
}

func (r *runner) notify(e Event) {
	if r.opts.Notify != nil {
		r.opts.Notify(e)
	}
}

func (r *runner) bufSize() int64 { return min(maxBuffer, r.opts.PartSize) }

// run is a planned run in a dry run or a replay, a streamed one otherwise.
func (r *runner) run(ctx context.Context) (Result, error) {
	if r.opts.DryRun || r.opts.Manifest != nil {
		return r.runPlanned(ctx)
	}
	return r.runStreamed(ctx)
}

// runPlanned scans the whole listing before it changes anything: a dry run
// reports the whole plan, and a replay checks every pinned version
// (probeExact) first. Large objects are fetched first.
func (r *runner) runPlanned(ctx context.Context) (Result, error) {
	p := &plan{}
	if err := r.scan(ctx, p, scanHooks{}); err != nil {
		return Result{}, err
	}
	res := Result{Files: len(p.files), Dirs: len(p.dirs), Invalid: p.invalid}
	var todo []*fileItem
	for _, it := range p.files {
		if !r.tally(it) {
			res.UpToDate++
			continue
		}
		todo = append(todo, it)
	}
	if !r.opts.DryRun {
		if err := r.probeExact(ctx, todo); err != nil {
			return res, err
		}
	}
	var gone []string
	if r.opts.Delete {
		var err error
		if gone, err = r.prune(p, r.opts.DryRun); err != nil {
			return res, err
		}
		res.Deleted = len(gone)
	}
	if r.opts.DryRun {
		return r.dryRun(p, todo, gone, res)
	}
	r.deleted(gone)
	if len(todo) > 0 {
		if err := r.root.MkdirAll(WorkDir, 0o700); err != nil {
			return res, err
		}
	}
	var failed []error
	for _, d := range p.dirs {
		blocked, err := r.makeDir(d, p.acts)
		if err != nil {
			return res, err
		}
		if blocked != nil {
			failed = append(failed, blocked)
		}
	}
	// Large objects (two parts or more) first, each group in listing order.
	rank := func(it *fileItem) int {
		if r.nparts(it.obj.Size) >= 2 {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(todo, func(a, b *fileItem) int { return cmp.Compare(rank(a), rank(b)) })
	failed = append(failed, r.transfer(ctx, slices.Values(todo), &res)...)
	return r.conclude(ctx, p, res, failed, len(todo))
}

// runStreamed fetches files as the listing finds them: one goroutine scans
// (lists, creates directories, compares files with the destination) and
// hands each file to fetch to the transfer, so the first GETs start with
// the first directory listed rather than after the last. Delete prunes once
// the whole listing is in and the transfer is over, and only if the
// listing completed.
func (r *runner) runStreamed(ctx context.Context) (Result, error) {
	p := &plan{}
	feed := make(chan *fileItem)
	scanned := make(chan error, 1)
	var (
		failed        []error // the scan's, read once it is over
		fed, upToDate int
		workDir       bool
	)
	go func() {
		defer close(feed)
		scanned <- r.scan(ctx, p, scanHooks{
			dir: func(d string) error {
				blocked, err := r.makeDir(d, p.acts)
				if blocked != nil {
					failed = append(failed, blocked)
				}
				return err
			},
			file: func(it *fileItem) error {
				if !r.tally(it) {
					upToDate++
					return nil
				}
				if !workDir {
					if err := r.root.MkdirAll(WorkDir, 0o700); err != nil {
						return err
					}
					workDir = true
				}
				fed++
				select {
				case feed <- it:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			},
		})
	}()
	var res Result
	fetchFailed := r.transfer(ctx, func(yield func(*fileItem) bool) {
		for it := range feed {
			if !yield(it) {
				return
			}
		}
	}, &res)
	scanErr := <-scanned
	res.Files, res.Dirs, res.Invalid, res.UpToDate = len(p.files), len(p.dirs), p.invalid, upToDate
	if scanErr != nil && ctx.Err() == nil {
		res.Bytes = r.fetched.Load()
		return res, scanErr
	}
	if r.opts.Delete && ctx.Err() == nil {
		gone, err := r.prune(p, false)
		if err != nil {
			return res, err
		}
		res.Deleted = len(gone)
		r.deleted(gone)
	}
	return r.conclude(ctx, p, res, append(failed, fetchFailed...), fed)
}

// tally adds it to the progress totals and reports whether it is to be
// fetched; if not, it is counted as done (skipped).
func (r *runner) tally(it *fileItem) bool {
	r.tracker.AddTotal(1, it.obj.Size)
	if it.reason == "" {
		r.tracker.Skipped(it.obj.Size)
		return false
	}
	return true
}

// nparts is the number of PartSize parts of an object of size bytes.
func (r *runner) nparts(size int64) int {
	return int((size + r.opts.PartSize - 1) / r.opts.PartSize)
}

func (r *runner) deleted(gone []string) {
	for _, g := range gone {
		r.notify(Event{Level: slog.LevelInfo, Kind: EventDeleted, Path: g, Msg: "deleted " + g})
	}
}

// conclude ends a run that fetched todo files: it fails with the failed
// ones, or removes WorkDir, syncs the filesystem and records what was
// loaded.
func (r *runner) conclude(ctx context.Context, p *plan, res Result, failed []error, todo int) (Result, error) {
	res.Bytes = r.fetched.Load()
	res.Verified = int(r.verified.Load())
	res.Unverified = int(r.unverified.Load())
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if len(failed) > 0 {
		res.Failed = len(failed)
		return res, fmt.Errorf("%w: %d of %d: %w", ErrFailed, len(failed), todo, errors.Join(firstN(failed, 10)...))
	}
	if err := r.root.RemoveAll(WorkDir); err != nil {
		return res, err
	}
	if res.Fetched > 0 || res.Deleted > 0 {
		if err := syncfs(r.dir); err != nil {
			return res, err
		}
	}
	res.Loaded = &Manifest{Format: ManifestFormat, Objects: slices.Collect(p.loaded())}
	if len(p.invalid) > 0 {
		return res, fmt.Errorf("%w: %d (%w)", ErrInvalidKeys, len(p.invalid), errors.Join(firstN(p.invalid, 10)...))
	}
	return res, nil
}

func firstN(errs []error, n int) []error {
	if len(errs) > n {
		return append(slices.Clone(errs[:n]), fmt.Errorf("and %d more", len(errs)-n))
	}
	return errs
}

// dryRun reports the plan's actions as events.
func (r *runner) dryRun(p *plan, todo []*fileItem, gone []string, res Result) (Result, error) {
	changes := len(gone)
	for _, g := range gone {
		r.notify(Event{Level: slog.LevelInfo, Kind: EventWould, Path: g, Msg: "would delete " + g})
	}
	for _, d := range p.dirs {
		switch p.acts[d] {
		case dirCreate, dirReplace:
			changes++
			r.notify(Event{Level: slog.LevelInfo, Kind: EventWould, Path: d, Msg: "would create directory " + d})
		case dirBlocked:
			changes++
			r.notify(Event{Level: slog.LevelWarn, Kind: EventWould, Path: d,
				Msg: "would fail: a file is in the way of directory " + d + " (--delete replaces it)"})
		}
	}
	for _, it := range todo {
		changes++
		verb, why := "fetch", it.reason
		if it.reason != "missing" {
			verb = "repair"
		}
		if it.exact {
			why += "; at recorded version " + it.obj.Version.String() + ", not checked in a dry run"
		}
		r.notify(Event{Level: slog.LevelInfo, Kind: EventWould, Key: it.obj.Key, Path: it.path, Size: it.obj.Size,
			Msg: fmt.Sprintf("would %s %s (%d bytes, %s)", verb, it.path, it.obj.Size, why)})
	}
	res.Fetched = len(todo)
	if changes > 0 {
		return res, fmt.Errorf("%w: %d change(s) to make", ErrChanges, changes)
	}
	if len(p.invalid) > 0 {
		return res, fmt.Errorf("%w: %d", ErrInvalidKeys, len(p.invalid))
	}
	return res, nil
}

// transfer fetches items (see the package documentation) and returns the
// errors of the objects that failed. Objects start in order, each once the
// one before has every request it will make under way (its Download has
// dispatched all its parts), so it gets only the slots the earlier ones
// cannot use, and at most Concurrency objects are in flight. They run on
// Concurrency long-lived workers rather than a goroutine each: a fetch
// goes deep into the SDK, and a new goroutine's stack would grow (by
// copying) for each of thousands of small objects.
func (r *runner) transfer(ctx context.Context, items iter.Seq[*fileItem], res *Result) []error {
	var (
		mu     sync.Mutex
		failed []error
		wg     sync.WaitGroup
	)
	fail := func(it *fileItem, err error) {
		r.tracker.Failed()
		r.notify(Event{Level: slog.LevelError, Kind: EventFailed, Key: it.obj.Key, Path: it.path,
			Msg: fmt.Sprintf("failed %s: %v", it.path, err), Err: err})
		mu.Lock()
		failed = append(failed, fmt.Errorf("%q: %w", it.obj.Key, err))
		mu.Unlock()
	}
	type job struct {
		it         *fileItem
		dispatched func()
	}
	jobs := make(chan job) // unbuffered: a send waits for an idle worker
	for range r.opts.Concurrency {
		wg.Go(func() {
			for j := range jobs {
				err := r.fetch(ctx, j.it, j.dispatched)
				j.dispatched()
				switch {
				case err == nil:
					r.tracker.FileDone()
					mu.Lock()
					res.Fetched++
					mu.Unlock()
				case errors.Is(err, errVanished):
					r.tracker.Skipped(0)
					r.notify(Event{Level: slog.LevelWarn, Kind: EventVanished, Key: j.it.obj.Key, Path: j.it.path,
						Msg: j.it.obj.Key + ": " + err.Error()})
				case ctx.Err() != nil:
				default:
					fail(j.it, err)
				}
			}
		})
	}
feed:
	for it := range items {
		if d := it.blocked; d != "" {
			fail(it, fmt.Errorf("%s: a file is in the way of its directory %s (--delete replaces it)", it.path, d))
			continue
		}
		started := make(chan struct{})
		j := job{it: it, dispatched: sync.OnceFunc(func() { close(started) })}
		select {
		case jobs <- j:
		case <-ctx.Done():
			break feed
		}
		select {
		case <-started:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return failed
}

// inSlot runs one request to the store (other than the Downloads' GETs,
// which take theirs through objread) in one of the run's request slots;
// acquired, when set, is called as soon as it has the slot.
func (r *runner) inSlot(ctx context.Context, acquired func(), request func() error) error {
	if err := r.slots.Acquire(ctx, 1); err != nil {
		return err
	}
	defer r.slots.Release(1)
	if acquired != nil {
		acquired()
	}
	return request()
}

// lockDir takes an exclusive flock on dir for the run; a second load on
// the same directory fails with ErrLocked. The kernel drops the lock when
// the process dies.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, &fs.PathError{Op: "flock", Path: dir, Err: err}
	}
	return func() { f.Close() }, nil
}

// syncfs flushes the filesystem holding dir, so that a successful run's
// files are on disk before it reports success.
func syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &fs.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}
