// Package disktier is the persistent tier of the block cache: one file per
// block under a directory, bounded in bytes by evicting the least recently
// used blocks, and found again after a restart.
//
// Layout of Dir:
//
//	lock                 flock'd by the one process using Dir
//	tmp/                 blocks being written; emptied by Open
//	ab/abcd…ef-<index>   a committed block (see format.go), named by its ID
//
// Recency survives restarts through file modification times: a block's
// mtime is set when it is written and when it is read (at most once per
// TouchInterval), and Open orders blocks by it.
package disktier

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Sentinel errors, tested with errors.Is.
var (
	// ErrNotFound: the tier holds no block with that ID.
	ErrNotFound = errors.New("disk cache: block not found")
	// ErrCorrupt: the block's file was torn or damaged; it has been removed.
	ErrCorrupt = errors.New("disk cache: corrupt block")
	// ErrLocked: another Tier (in this or another process) has the directory.
	ErrLocked = errors.New("disk cache: directory in use by another process")
	// ErrTooLarge: the block alone exceeds the tier's bound.
	ErrTooLarge = errors.New("disk cache: block larger than the cache")
	// ErrClosed: the Tier has been closed.
	ErrClosed = errors.New("disk cache: closed")
)

// DefaultTouchInterval is how stale a block's mtime may get before a read
// refreshes it.
const DefaultTouchInterval = time.Minute

// Options configure Open.
type Options struct {
	Dir      string // required; created if missing
	MaxBytes int64  // bound on the bytes of block files (headers included); > 0
	// Now is the clock for recency; nil means time.Now.
	Now func() time.Time
	// TouchInterval: a read rewrites the file's mtime only when the last one
	// written is older than this, so hot blocks do not cost a metadata write
	// per read. 0 means DefaultTouchInterval; negative means every read.
	TouchInterval time.Duration
	// OnEvict, if set, is called with the file size of each block evicted to
	// stay under MaxBytes. It runs with the Tier's lock held and must not call
	// the Tier.
	OnEvict func(size int64)
}

// Tier is a directory of blocks. Its methods are safe for concurrent use.
//
// INVARIANT (whenever mu is not held):
//   - len(index) == lru.Len(), and index[e.id] is the element holding e for
//     every entry e in lru.
//   - used is the sum of the entries' sizes, and used <= maxBytes.
//   - every entry's size is at least headerSize.
//   - every entry had its file renamed into place; files of entries removed
//     from the index have been unlinked (or were already gone).
type Tier struct {
	dir      string
	tmpDir   string
	maxBytes int64
	now      func() time.Time
	touch    time.Duration
	onEvict  func(size int64)
	lockFile *os.File

	mu     sync.Mutex
	index  map[ID]*list.Element // GUARDED_BY(mu)
	lru    *list.List           // GUARDED_BY(mu); of *entry, front = least recently used
	used   int64                // GUARDED_BY(mu)
	closed bool                 // GUARDED_BY(mu)
}

// entry is one committed block.
type entry struct {
	id      ID
	size    int64     // file size, header included
	touched time.Time // GUARDED_BY(Tier.mu); last mtime written or found
}

// Get returns the content of block id. The slice is freshly allocated, owned
// by the caller and never touched again by the Tier. Errors: ErrNotFound if
// the tier has no such block; an error wrapping ErrCorrupt if its file
// failed verification (the file is removed, so the next Get is a miss);
// ErrClosed; or the I/O error reading it (the block is kept).
func (t *Tier) Get(id ID) ([]byte, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	el, ok := t.index[id]
	if !ok {
		t.mu.Unlock()
		return nil, ErrNotFound
	}
	t.lru.MoveToBack(el)
	e := el.Value.(*entry)
	now := t.now()
	refresh := now.Sub(e.touched) >= t.touch
	if refresh {
		e.touched = now
	}
	t.mu.Unlock()

	path := filepath.Join(t.dir, id.relPath())
	data, err := readBlock(path)
	var torn errTorn
	switch {
	case err == nil:
		if refresh {
			// Best effort: a failure only makes recency after a restart
			// less accurate (and the file may have just been evicted).
			_ = os.Chtimes(path, now, now)
		}
		return data, nil
	case errors.Is(err, fs.ErrNotExist):
		t.drop(el, false) // removed behind our back
		return nil, ErrNotFound
	case errors.As(err, &torn):
		t.drop(el, true)
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, torn)
	default:
		return nil, err
	}
}

// Put stores data as block id, replacing any block with that ID, then
// evicts least recently used blocks until the tier is within MaxBytes. The
// block becomes visible to Get only once complete (written to a temporary
// file, then renamed). Put does not keep data. Errors: ErrTooLarge if the
// block alone exceeds MaxBytes, ErrClosed, or the I/O error writing it (in
// which case nothing is stored).
func (t *Tier) Put(id ID, data []byte) error {
	size := FileSize(len(data))
	if size > t.maxBytes {
		return fmt.Errorf("%w: %d bytes, bound %d", ErrTooLarge, size, t.maxBytes)
	}
	tmp, err := writeTemp(t.tmpDir, data)
	if err != nil {
		return err
	}
	now := t.now()
	// Best effort, like Get's refresh: the mtime orders blocks after restart.
	_ = os.Chtimes(tmp, now, now)

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		os.Remove(tmp)
		return ErrClosed
	}
	// Rename with the lock held, so the index and the directory change
	// together: concurrent Puts of one ID end with the index describing the
	// file that won.
	if err := t.commit(tmp, id); err != nil {
		os.Remove(tmp)
		return err
	}
	if old, ok := t.index[id]; ok {
		t.used -= old.Value.(*entry).size
		t.lru.Remove(old)
	}
	t.index[id] = t.lru.PushBack(&entry{id: id, size: size, touched: now})
	t.used += size
	t.evictLocked()
	return nil
}

// commit renames tmp to id's path, creating the fan-out directory if needed.
func (t *Tier) commit(tmp string, id ID) error {
	path := filepath.Join(t.dir, id.relPath())
	err := os.Rename(tmp, path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		err = os.Rename(tmp, path)
	}
	return err
}

// evictLocked removes least recently used blocks until used <= maxBytes.
// A file that cannot be unlinked is forgotten all the same (the next Open
// finds and accounts it again).
func (t *Tier) evictLocked() {
	for t.used > t.maxBytes {
		el := t.lru.Front()
		e := el.Value.(*entry)
		_ = os.Remove(filepath.Join(t.dir, e.id.relPath()))
		t.forgetLocked(el)
		if t.onEvict != nil {
			t.onEvict(e.size)
		}
	}
}

// drop forgets el if it is still the current entry for its ID (a
// concurrent Put may have replaced it), removing its file if rm is set.
func (t *Tier) drop(el *list.Element, rm bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := el.Value.(*entry)
	if t.closed || t.index[e.id] != el {
		return
	}
	if rm {
		_ = os.Remove(filepath.Join(t.dir, e.id.relPath()))
	}
	t.forgetLocked(el)
}

func (t *Tier) forgetLocked(el *list.Element) {
	e := el.Value.(*entry)
	delete(t.index, e.id)
	t.lru.Remove(el)
	t.used -= e.size
}

// Used returns the bytes of block files (headers included) the tier holds.
func (t *Tier) Used() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.used
}

// Has reports whether the tier holds block id, without reading it (a Get
// may still find it torn, or evicted meanwhile).
func (t *Tier) Has(id ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.index[id]
	return ok
}

// Len returns the number of blocks the tier holds.
func (t *Tier) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.index)
}

// Close releases the directory for another Tier; blocks stay on disk for
// the next Open. Later calls return ErrClosed.
func (t *Tier) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	t.closed = true
	return unlock(t.lockFile)
}

// checkInvariants returns the first violated INVARIANT, for tests.
func (t *Tier) checkInvariants() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.index) != t.lru.Len() {
		return fmt.Errorf("index has %d entries, lru %d", len(t.index), t.lru.Len())
	}
	var sum int64
	for el := t.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*entry)
		if t.index[e.id] != el {
			return fmt.Errorf("lru entry %s not indexed", e.id.relPath())
		}
		if e.size < headerSize {
			return fmt.Errorf("entry %s has size %d", e.id.relPath(), e.size)
		}
		sum += e.size
	}
	if sum != t.used {
		return fmt.Errorf("used = %d, entries sum to %d", t.used, sum)
	}
	if t.used > t.maxBytes {
		return fmt.Errorf("used = %d over bound %d", t.used, t.maxBytes)
	}
	return nil
}
