// Package store uploads a local directory to a store prefix: each regular
// file to prefix + its relative path, each empty directory to a "dir/"
// marker, through the staged upload journal (fs/journal), so that a run
// killed at any moment resumes without sending again what the store already
// holds, and a run after a successful one only lists.
//
// # What is stored
//
//   - Regular files, with content type from the extension and user metadata
//     "mtime" (in rclone's format for the store, see MtimeFormat) and
//     "mode" (rclone's "0100644" form). Directories with nothing stored
//     under them become markers ("dir/", empty, with the same metadata) so
//     that load recreates them.
//   - Symbolic links, devices, sockets and FIFOs are not stored: each is
//     reported with a "skip" event naming it, and counted in the result.
//     Names that cannot be object keys (invalid UTF-8, over 255 bytes) are
//     skipped the same way.
//   - The journal directory (default DIR/.ferry-store, JournalDirName) is
//     never stored, wherever it lies under DIR; nor is DIR/.ferry-store
//     when the journal lives elsewhere, nor the paths of Options.Exclude
//     (cmd passes load's work directory).
//
// # Up to date
//
// A local file is up to date, and nothing is sent for it, when the
// listing of the prefix has its key with the same size and
//
//  1. the file's sum record (the SumXattr extended attribute, valid only
//     while the file keeps the size, mtime and inode it was made for) says
//     that ferry stored or verified it at this store and key, and the
//     listed ETag is the one recorded then; this covers content and mtime
//     at once and works for every object (S3 multipart and SSE-KMS ETags,
//     GCS composites); or
//  2. the object's checksum equals the file's (its MD5, else its CRC32C,
//     else an ETag of 32 hex digits equal to the file's MD5) and its
//     "mtime" metadata equals the file's mtime. Both are taken from the
//     listing; where the listing lacks them (S3 lists no metadata, nor
//     checksums but the ETag), one HEAD reads them. The sum record is then
//     written, so the next run takes rule 1.
//
// File checksums come from the journal or the sum record when their file
// state still matches, else from reading the file. A run after a successful
// one therefore reads no file and makes listing requests only (LIST and
// LIST-UPLOADS). A directory marker is up to date when its key is listed.
// A change of mode alone (chmod) is not noticed. The sum record changes
// the file's ctime and nothing else; where user
// xattrs are not supported, files are hashed on every run and S3 needs a
// HEAD per file.
//
// # Integrity
//
// Every Put and multipart upload carries the file's MD5 and CRC32C for the
// store to verify (what each store verifies is in its driver); the parts
// carry their own checksums. After the upload the store's checksum of the
// object is compared with the file's; on a mismatch the object is deleted
// and the file fails with backends.ErrChecksum.
//
// # Resume
//
// The plan (key, size, mtime, inode, checksums), each multipart upload id
// with its part size, and each part stored are recorded in the journal
// before or as they happen; the journal syncs at most once a second, so
// recording costs little even for many small files. A re-run lists the
// store first: files already there are done. For a file whose journal
// entry still matches it, the
// upload is continued: the store's ListParts says which parts it holds, and
// only the others are sent; nothing appears at the key until the upload is
// completed. Pending uploads under the prefix that are not being continued
// are aborted (which also removes the driver's temporary part objects)
// when the journal had staged their key, or when they are older than
// Options.AbandonedAfter. After a successful run the journal is removed and
// the directory's modification time restored.
//
// # Memory
//
// Bodies, whole files and parts alike, are sections of the open file
// (io.SectionReader), never buffered here; at most Options.Concurrency
// requests are in flight in total (parts of one file and files together),
// so memory is bounded by Concurrency times the driver's own per-request
// buffers (measured on S3: about 150 KiB of peak RSS a request, copy
// buffers and the connection's), about 5 MiB at the default of 32,
// whatever the file sizes. Planning holds one small record (about 300
// bytes) per local file and listed object.
//
// The default concurrency is 32, not the 8 that saturate a network link
// with parts: a small file's Put costs little bandwidth and mostly waits
// for the server (MinIO syncs each object to disk), so many in flight keep
// the server busy; for parts, 32 cost no more memory than 8.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/walk"
	"github.com/ferryio/ferry/fs/journal"
	"github.com/ferryio/ferry/fs/objmeta"
	"github.com/ferryio/ferry/fs/progress"
)

// JournalDirName is the journal's directory under the stored directory by
// default. load leaves a directory of this name alone.
const JournalDirName = ".ferry-store"

// Defaults for Options.
const (
	DefaultConcurrency    = 32 // see the package doc, "Memory"
	DefaultPartSize       = 16 << 20
	DefaultAbandonedAfter = 24 * time.Hour
)

// Sentinel errors.
var (
	// ErrChanged: a file changed (size, mtime or inode) between planning
	// and upload, or while it was read. A re-run stores its new content.
	ErrChanged = errors.New("file changed while being stored")
	// ErrNotDir: Options.Dir is not a directory.
	ErrNotDir = errors.New("not a directory")
)

// Events receives messages for the user; progress.Reporter implements it.
// Events used: "skip" (a local entry not stored), "dry-run" (what would be
// done), "abort" (an abandoned upload removed), "resume" (an upload
// continued), "error" (one file failed), "warning".
type Events interface {
	Event(event, msg string, fields map[string]any)
}

// Options configure Run. Dir, Store and Target are required.
type Options struct {
	// Dir is the directory to store.
	Dir string
	// Store is the destination, seen through its prefix (keys relative to
	// it). With the backends.Multipart capability large files go in parts
	// and resume part by part; without it, each file is one Put.
	Store backends.Backend
	// Target is the store URL with its prefix. It identifies the
	// destination in the journal and in sum records.
	Target string
	// MtimeFormat is how "mtime" metadata is written (rclone's format for
	// the store's provider).
	MtimeFormat objmeta.MtimeFormat
	// JournalDir is where the journal lives; default
	// Dir/JournalDirName. It must survive a restart to allow a resume.
	JournalDir string
	// Exclude are paths relative to Dir that are never stored (other
	// tools' work directories).
	Exclude []string
	// Concurrency bounds requests in flight, files and parts together
	// (and files hashed at once); default DefaultConcurrency. Memory grows
	// with it by the driver's per-request buffers, not by the part size
	// (see the package doc, "Memory").
	Concurrency int
	// PartSize is the multipart part size, raised to the store's minimum
	// and to what keeps a file within its part count limit; files larger
	// than a part go in parts. Default DefaultPartSize.
	PartSize int64
	// Delete removes keys under the prefix that are not present locally.
	Delete bool
	// DryRun plans and reports what would be done and changes nothing
	// (no journal, no sum record, no request but listings and HEADs).
	DryRun bool
	// AbandonedAfter is the age past which a pending multipart upload
	// under the prefix that the journal does not know is aborted; default
	// DefaultAbandonedAfter.
	AbandonedAfter time.Duration
	// Tracker receives progress; nil for none.
	Tracker *progress.Tracker
	// Events receives user-facing messages; nil for none.
	Events Events
	// Logger receives debug lines (each part stored); nil for none.
	Logger *slog.Logger
}

// Result counts what a run did (or, for a dry run, would do).
type Result struct {
	Uploaded      int   // files and markers stored
	UploadedBytes int64 // bytes sent (parts reused not included)
	UpToDate      int   // files and markers already in the store
	Resumed       int   // multipart uploads continued from an earlier run
	PartsReused   int   // parts of those not sent again
	Deleted       int   // keys removed (Delete)
	Aborted       int   // pending uploads aborted
	Skipped       int   // local entries not stored (links, special files)
	Failed        int   // files that failed
	// Changes is, for a dry run, the number of uploads, deletions and
	// aborts that a real run would make.
	Changes int
}

func (o Options) withDefaults() (Options, error) {
	if o.Store == nil || o.Dir == "" || o.Target == "" {
		return o, errors.New("store: Dir, Store and Target are required")
	}
	var err error
	// Dir may be a symlink to the directory (a volume mounted elsewhere);
	// paths are compared once resolved.
	if o.Dir, err = resolve(o.Dir); err != nil {
		return o, err
	}
	if o.JournalDir == "" {
		o.JournalDir = filepath.Join(o.Dir, JournalDirName)
	}
	if o.JournalDir, err = resolve(o.JournalDir); err != nil {
		return o, err
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.AbandonedAfter <= 0 {
		o.AbandonedAfter = DefaultAbandonedAfter
	}
	if o.Tracker == nil {
		o.Tracker = &progress.Tracker{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// resolve makes p absolute with its symlinks resolved; a p that does not
// exist yet has its parent resolved.
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	r, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, os.ErrNotExist) {
		parent, perr := filepath.EvalSymlinks(filepath.Dir(abs))
		if perr != nil {
			return abs, nil
		}
		return filepath.Join(parent, filepath.Base(abs)), nil
	}
	return r, err
}

// runner is one Run.
type runner struct {
	o     Options
	mp    backends.Multipart // nil without the capability
	j     *journal.Journal   // nil until there is work (and in a dry run)
	prior map[string]journal.Entry
	sem   *semaphore.Weighted // requests in flight

	mu  sync.Mutex
	res Result // GUARDED_BY(mu)
}

func (r *runner) count(f func(*Result)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.res)
}

func (r *runner) event(event, msg string, fields map[string]any) {
	if r.o.Events != nil {
		r.o.Events.Event(event, msg, fields)
	}
}

// Run stores o.Dir at o.Store. It returns the counts of what was done and,
// when anything failed, an error: the first fatal one (store unreachable,
// permission, cancelled context), or one naming how many files failed. The
// journal is kept after a failure and removed after a success.
func Run(ctx context.Context, o Options) (Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	fi, err := os.Stat(o.Dir)
	if err != nil {
		return Result{}, fmt.Errorf("store: %w", err)
	}
	if !fi.IsDir() {
		return Result{}, fmt.Errorf("store: %s: %w", o.Dir, ErrNotDir)
	}
	r := &runner{o: o, sem: semaphore.NewWeighted(int64(o.Concurrency))}
	r.mp, _ = o.Store.(backends.Multipart)
	err = r.run(ctx, fi.ModTime())
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.res, err
}

func (r *runner) run(ctx context.Context, dirMtime time.Time) (err error) {
	if !r.o.DryRun && journal.Exists(r.o.JournalDir) {
		if err := r.openJournal(dirMtime); err != nil {
			return err
		}
	}
	defer func() {
		if r.j == nil {
			return
		}
		if err != nil {
			if cerr := r.j.Close(); cerr != nil {
				r.o.Logger.Warn("closing the journal", "err", cerr)
			}
			return
		}
		err = r.finishJournal()
	}()

	exclude := []string{r.o.JournalDir, filepath.Join(r.o.Dir, JournalDirName)}
	for _, rel := range r.o.Exclude {
		exclude = append(exclude, filepath.Join(r.o.Dir, rel))
	}
	local, err := scan(ctx, r.o.Dir, exclude)
	if err != nil {
		return err
	}
	for _, s := range local.Skipped {
		r.event("skip", fmt.Sprintf("skipping %q: %s", s.Rel, s.Reason), map[string]any{"path": s.Rel, "reason": s.Reason})
	}
	r.count(func(res *Result) { res.Skipped = len(local.Skipped) })
	var total int64
	for _, it := range local.Items {
		total += it.Size
	}
	r.o.Tracker.AddTotal(int64(len(local.Items)), total)

	remote, err := r.list(ctx)
	if err != nil {
		return err
	}
	p, err := r.plan(ctx, local, remote)
	if err != nil {
		return err
	}
	if r.o.DryRun {
		r.report(p)
		return nil
	}
	if len(p.uploads) > 0 && r.j == nil {
		if err := r.openJournal(dirMtime); err != nil {
			return err
		}
	}
	return r.execute(ctx, p)
}

// each calls f(ctx, i) for i in [0, n) on at most Concurrency goroutines
// that each take the next index until none is left, and returns the first
// error, which cancels the ctx given to the other calls. (A few long-lived
// workers rather than a goroutine per item: the driver's calls need deep
// stacks, which a worker grows once.)
func (r *runner) each(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range min(r.o.Concurrency, n) {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return nil
				}
				if err := gctx.Err(); err != nil {
					return err
				}
				if err := f(gctx, i); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// list reads the whole listing of the prefix into a map by key, directories
// listed Concurrency at a time (see package walk).
func (r *runner) list(ctx context.Context) (map[string]backends.ObjectInfo, error) {
	remote := map[string]backends.ObjectInfo{}
	for e, err := range walk.List(ctx, r.o.Store, "", walk.Options{Concurrency: r.o.Concurrency}) {
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", r.o.Target, err)
		}
		remote[e.Key] = e.ObjectInfo
	}
	return remote, nil
}

// Journal meta values.
const metaDirMtime = "dir_mtime"

// openJournal opens (or creates) the journal. A journal written for another
// target is reset: its uploads belong to that store and are left to its
// own cleanup.
func (r *runner) openJournal(dirMtime time.Time) error {
	created := !journal.Exists(r.o.JournalDir)
	_, statErr := os.Stat(r.o.JournalDir)
	j, err := journal.Open(r.o.JournalDir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	r.j = j
	meta := j.Meta()
	if created || meta.Target != r.o.Target {
		if !created {
			r.event("warning", fmt.Sprintf("journal in %s was for %s, not %s: starting afresh", r.o.JournalDir, meta.Target, r.o.Target), nil)
		}
		values := meta.Values
		if created {
			values = nil
			// The journal directory was made inside Dir by this run:
			// remember Dir's mtime to restore it at the end.
			if errors.Is(statErr, os.ErrNotExist) && filepath.Dir(r.o.JournalDir) == r.o.Dir {
				values = map[string]string{metaDirMtime: dirMtime.Format(time.RFC3339Nano)}
			}
		}
		return j.Reset(journal.Meta{Target: r.o.Target, Created: time.Now().UTC(), Values: values})
	}
	r.prior = map[string]journal.Entry{}
	for _, e := range j.Entries() {
		r.prior[e.Key] = e
	}
	return nil
}

// finishJournal removes the journal after a successful run and, when the
// run made the journal directory inside Dir, gives Dir back the
// modification time it had before.
func (r *runner) finishJournal() error {
	meta := r.j.Meta()
	if err := r.j.Remove(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if v, ok := meta.Values[metaDirMtime]; ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			if err := os.Chtimes(r.o.Dir, time.Time{}, t); err != nil {
				r.o.Logger.Debug("restoring the directory's mtime", "dir", r.o.Dir, "err", err)
			}
		}
	}
	return nil
}

// report prints a dry run's plan.
func (r *runner) report(p *plan) {
	for _, u := range p.uploads {
		msg := fmt.Sprintf("would upload %s (%d bytes)", u.item.Key, u.item.Size)
		if u.item.Dir {
			msg = "would create the directory marker " + u.item.Key
		}
		r.event("dry-run", msg, map[string]any{"key": u.item.Key, "size": u.item.Size, "action": "upload"})
	}
	for _, k := range p.deletes {
		r.event("dry-run", "would delete "+k, map[string]any{"key": k, "action": "delete"})
	}
	for _, u := range p.aborts {
		r.event("dry-run", fmt.Sprintf("would abort the pending upload of %s (started %s)", u.Key, u.Started.Format(time.RFC3339)), map[string]any{"key": u.Key, "action": "abort"})
	}
	r.count(func(res *Result) { res.Changes = len(p.uploads) + len(p.deletes) + len(p.aborts) })
}

// sortedKeys returns m's keys in order (for stable reports).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
