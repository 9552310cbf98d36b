package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/journal"
	"github.com/ferryio/ferry/fs/objread"
	"github.com/ferryio/ferry/fs/store"
)

// wfile is one staged file: a local copy of a key's content under the
// staging directory, which reads and writes of the mount go to from its
// first open for writing until it is removed or renamed away.
//
// Writes (and truncates) hold content shared; an upload holds it
// exclusively, so that the bytes it sends are the bytes it hashed.
type wfile struct {
	content sync.RWMutex
	f       *os.File // the staging file, read-write
	path    string

	// The fields below are GUARDED_BY(writer.mu).
	key     string            // "" once removed (its bytes are not stored)
	base    *backends.Version // the store's version the bytes derive from; nil: none
	mode    uint32            // permission bits
	mtime   time.Time
	dirty   bool // written since it was last staged in the journal
	pending bool // staged in the journal, not yet in the store
	sums    backends.Checksums
	handles int // open handles
	timer   *time.Timer
}

// get returns the staged file of key, if any.
func (w *writer) get(key string) *wfile {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.files[key]
}

// newStagingFile creates an empty staging file.
func (w *writer) newStagingFile() (*os.File, error) {
	w.mu.Lock()
	w.seq++
	name := strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(w.seq, 36)
	w.mu.Unlock()
	return os.OpenFile(filepath.Join(w.staging, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

// open returns key's staged file, staging it first: empty when obj is nil
// (a new file) or trunc is set, else a copy of obj downloaded through the
// reader. mode is the permission bits of a new staged file.
func (w *writer) open(ctx context.Context, key string, obj *object, trunc bool, mode uint32) (*wfile, error) {
	if wf := w.get(key); wf != nil {
		if trunc {
			if err := w.truncate(wf, 0); err != nil {
				return nil, err
			}
		}
		return wf, nil
	}
	f, err := w.newStagingFile()
	if err != nil {
		return nil, err
	}
	wf := &wfile{f: f, path: f.Name(), key: key, mode: mode, mtime: w.fsys.now(), dirty: obj == nil || trunc}
	if obj != nil {
		v := obj.version
		wf.base = &v
		if !obj.mtime.IsZero() {
			wf.mtime = obj.mtime
		}
		if !trunc {
			if err := w.download(ctx, *obj, f); err != nil {
				f.Close()
				os.Remove(wf.path)
				return nil, err
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if other := w.files[key]; other != nil {
		f.Close()
		os.Remove(wf.path)
		return other, nil
	}
	w.files[key] = wf
	return wf, nil
}

// download copies obj, pinned to its version, into f.
func (w *writer) download(ctx context.Context, obj object, f *os.File) error {
	r := objread.Open(w.fsys.b, obj.info(), objread.Options{Logger: w.log})
	buf := make([]byte, 1<<20)
	for off := int64(0); off < obj.size; {
		n := min(int64(len(buf)), obj.size-off)
		if _, err := r.ReadAt(ctx, buf[:n], off); err != nil {
			return err
		}
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// writeAt writes p at off of wf.
func (w *writer) writeAt(wf *wfile, p []byte, off int64) (int, error) {
	wf.content.RLock()
	defer wf.content.RUnlock()
	n, err := wf.f.WriteAt(p, off)
	w.touch(wf)
	return n, err
}

// truncate sets wf's size.
func (w *writer) truncate(wf *wfile, size int64) error {
	wf.content.RLock()
	defer wf.content.RUnlock()
	err := wf.f.Truncate(size)
	w.touch(wf)
	return err
}

func (w *writer) touch(wf *wfile) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wf.dirty = true
	wf.mtime = w.fsys.now()
}

// setAttrs changes wf's mode and mtime (nil: unchanged).
func (w *writer) setAttrs(wf *wfile, mode *uint32, mtime *time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if mode != nil {
		wf.mode = *mode & 0o7777
	}
	if mtime != nil {
		wf.mtime = *mtime
	}
	wf.dirty = true
}

// attrs returns wf's size, mode and mtime.
func (w *writer) attrs(wf *wfile) (int64, uint32, time.Time, error) {
	fi, err := wf.f.Stat()
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return fi.Size(), wf.mode, wf.mtime, nil
}

// commit stages wf's bytes in the journal if they changed and uploads
// them: at once when now is set or write-back is off, else after the
// write-back delay. With now set it returns once the bytes are durable in
// the store (the staging file is synced too).
func (w *writer) commit(ctx context.Context, wf *wfile, now bool) error {
	wf.content.Lock()
	w.mu.Lock()
	key, dirty := wf.key, wf.dirty
	w.mu.Unlock()
	if key == "" {
		wf.content.Unlock()
		return nil // removed: nothing to store
	}
	if dirty {
		if err := w.stage(ctx, wf); err != nil {
			wf.content.Unlock()
			return err
		}
	}
	if now || w.opts.WriteBack <= 0 {
		if now {
			if err := wf.f.Sync(); err != nil {
				wf.content.Unlock()
				return err
			}
		}
		defer wf.content.Unlock()
		return w.uploadLocked(ctx, wf)
	}
	wf.content.Unlock()
	w.schedule(wf)
	return nil
}

// entryFor hashes wf's staged content and returns its journal entry for
// key, based on base (content held).
func entryFor(ctx context.Context, wf *wfile, key string, base *backends.Version) (journal.Entry, error) {
	sums, err := store.HashFile(ctx, wf.path)
	if err != nil {
		return journal.Entry{}, err
	}
	fi, err := wf.f.Stat()
	if err != nil {
		return journal.Entry{}, err
	}
	return journal.Entry{Key: key, Source: wf.path, Size: fi.Size(), ModTime: wf.mtime, Mode: wf.mode, Sums: sums, Base: base}, nil
}

// stage hashes wf and records it in the journal (content held).
func (w *writer) stage(ctx context.Context, wf *wfile) error {
	e, err := entryFor(ctx, wf, wf.key, wf.base)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.j.Stage(e); err != nil {
		return err
	}
	wf.sums, wf.dirty, wf.pending = e.Sums, false, true
	return nil
}

// schedule arms wf's write-back timer (again).
func (w *writer) schedule(wf *wfile) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || !wf.pending {
		return
	}
	w.stopTimerLocked(wf)
	w.timers.Add(1)
	var t *time.Timer
	t = time.AfterFunc(w.opts.WriteBack, func() {
		defer w.timers.Done()
		w.mu.Lock()
		mine := wf.timer == t
		if mine {
			wf.timer = nil
		}
		w.mu.Unlock()
		if !mine {
			return
		}
		if err := w.uploadPending(w.ctx, wf); err != nil && w.ctx.Err() == nil {
			w.log.Error("mount: write-back upload failed; it stays in the journal for the next mount",
				"key", wf.key, "cause", redact(err.Error()))
		}
	})
	wf.timer = t
}

// stopTimerLocked disarms wf's write-back timer (mu held). Each armed
// timer counts once in timers: its function or this stop takes it off.
func (w *writer) stopTimerLocked(wf *wfile) {
	if wf.timer != nil && wf.timer.Stop() {
		w.timers.Done()
	}
	wf.timer = nil
}

// uploadPending uploads wf if it is pending and not written since it was
// staged (a writer's next close stages it again).
func (w *writer) uploadPending(ctx context.Context, wf *wfile) error {
	wf.content.Lock()
	defer wf.content.Unlock()
	w.mu.Lock()
	skip := wf.dirty || !wf.pending || wf.key == ""
	w.mu.Unlock()
	if skip {
		return nil
	}
	return w.uploadLocked(ctx, wf)
}

// uploadLocked stores wf's pending entry (content held exclusively).
// Under a conflict the staged file moves to the conflict key.
func (w *writer) uploadLocked(ctx context.Context, wf *wfile) error {
	w.mu.Lock()
	key, pending := wf.key, wf.pending
	w.stopTimerLocked(wf)
	w.mu.Unlock()
	if !pending {
		return nil
	}
	e, ok := w.j.Entry(key)
	if !ok {
		return fmt.Errorf("%w: %q", journal.ErrNotStaged, key)
	}
	at, info, err := w.store(ctx, e)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	v := info.Version
	wf.base, wf.pending = &v, false
	if at != key && w.files[key] == wf {
		delete(w.files, key)
		wf.key = at
		w.files[at] = wf
	}
	return nil
}

// remove forgets key's staged file (its bytes are not to be stored) and
// deletes the object, through a journal record so that a crash completes
// the deletion and never uploads the removed file.
func (w *writer) remove(ctx context.Context, key string) error {
	if wf := w.get(key); wf != nil {
		wf.content.Lock()
		defer wf.content.Unlock()
		w.detach(wf)
	}
	if err := w.j.Stage(journal.Entry{Key: key}); err != nil {
		return err
	}
	if err := w.fsys.b.Delete(ctx, key); err != nil {
		return err
	}
	return w.done(key)
}

// detach takes wf out of the namespace (content held). Its staging file
// goes when its last handle is released.
func (w *writer) detach(wf *wfile) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopTimerLocked(wf)
	if w.files[wf.key] == wf {
		delete(w.files, wf.key)
	}
	wf.key, wf.pending, wf.dirty = "", false, false
	if wf.handles == 0 {
		wf.f.Close()
		_ = os.Remove(wf.path)
	}
}

// opened and released count wf's handles.
func (w *writer) opened(wf *wfile) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wf.handles++
}

func (w *writer) released(wf *wfile) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wf.handles--
	if wf.handles == 0 && wf.key == "" {
		wf.f.Close()
		_ = os.Remove(wf.path)
	}
}

// rename moves the file at from (staged as wf) to the key to: its bytes
// are uploaded at to (under the conflict rule, base being the version of
// to this mount knew, toBase) and then from is deleted. Both steps are in
// the journal first, so a crash completes them (uploads before
// deletions).
func (w *writer) rename(ctx context.Context, wf *wfile, from, to string, toBase *backends.Version) error {
	if old := w.get(to); old != nil && old != wf {
		old.content.Lock()
		w.detach(old)
		old.content.Unlock()
	}
	wf.content.Lock()
	defer wf.content.Unlock()
	e, err := entryFor(ctx, wf, to, toBase)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.stopTimerLocked(wf)
	if w.files[from] == wf {
		delete(w.files, from)
	}
	wf.key, wf.sums, wf.dirty, wf.pending = to, e.Sums, false, true
	w.files[to] = wf
	err = w.j.Stage(e)
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if err := w.j.Stage(journal.Entry{Key: from}); err != nil {
		return err
	}
	if err := w.uploadLocked(ctx, wf); err != nil {
		return err
	}
	if err := w.fsys.b.Delete(ctx, from); err != nil {
		return err
	}
	return w.done(from)
}

// localChildren are the staged files directly in directory dir, for
// listings: files created and not yet in the store show before their
// upload.
func (w *writer) localChildren(dir string) []child {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []child
	for k := range w.files {
		if rest, ok := strings.CutPrefix(k, dir); ok && rest != "" && !strings.Contains(rest, "/") {
			out = append(out, child{name: rest, obj: object{key: k}})
		}
	}
	return out
}

// hasUnder reports whether a staged file lies below directory dir.
func (w *writer) hasUnder(dir string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.files {
		if strings.HasPrefix(k, dir) {
			return true
		}
	}
	return false
}

// readAt reads wf's staged bytes.
func (w *writer) readAt(wf *wfile, p []byte, off int64) (int, error) {
	n, err := wf.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}
