// Package journal is the staged upload journal: a crash-safe record of the
// files that are to be uploaded to an object store, of the multipart uploads
// started for them and of the parts already sent, so that a process killed
// at any moment can be restarted and go on where it stopped. `ferry store`
// records its plan in it; the read-write mount records "file X staged at
// path P, to upload" entries in it and completes them after a crash.
//
// # On disk
//
// A journal is a directory holding two files:
//
//   - "journal": an append-only log, one record per line, each line
//     "<crc32c of the JSON, 8 hex digits> <JSON>\n". A record is written
//     with a single write(2), so a killed process never loses a record that
//     was acknowledged; a machine crash may tear the tail, and replay stops
//     at the first line whose checksum or JSON is bad (that tail is dropped
//     and the next compaction removes it).
//   - "lock": held with flock(2) while the journal is open, so that two
//     processes never write one journal (Open fails with ErrLocked). The
//     kernel releases it when the holder dies, so a restarted container
//     can open the journal at once.
//
// Records are: "meta" (who writes the journal and for which target),
// "stage" (an Entry: the bytes of Source are to be stored at Key), "upload"
// (a multipart upload was started for Key), "part" (a part of it was stored),
// "done" (Key is finished and forgotten) and "reset" (everything before is
// void). Replaying them in order gives the live state: one Entry per key
// still to be finished.
//
// # Durability
//
// Every record reaches the kernel before its method returns (it survives a
// killed process). fsync(2) runs on StartUpload, SetMeta, Reset and Close,
// on an explicit Sync, and otherwise at most every SyncInterval while
// records are appended (group commit), so a machine crash costs at most the
// records of the last interval: parts sent again, never a wrong object,
// because an upload is only completed from parts the store itself lists.
//
// # Size
//
// Memory holds the live entries only (key, source, size, times, checksums,
// upload and parts: about 200 bytes a file plus 60 bytes a part). The log is
// rewritten atomically (temporary file, fsync, rename, fsync of the
// directory) when it is opened with dead records in it and whenever it grows
// past four times its live records, so its size stays proportional to the
// work left.
package journal

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/ferryio/ferry/backends"
)

// File names inside a journal directory.
const (
	LogName  = "journal"
	lockName = "lock"
	tmpName  = "journal.tmp"
)

// SyncInterval bounds how long an appended record may stay without fsync
// while records keep coming.
const SyncInterval = time.Second

// Sentinel errors.
var (
	// ErrLocked: another live process has the journal open.
	ErrLocked = errors.New("journal is in use by another process")
	// ErrNotStaged: the key has no live entry.
	ErrNotStaged = errors.New("key is not staged in the journal")
	// ErrClosed: the journal was closed or removed.
	ErrClosed = errors.New("journal is closed")
)

// Meta describes a journal as a whole.
type Meta struct {
	// Target names where the entries go (a store URL). A journal written
	// for another target must not be resumed against this one.
	Target string `json:"target"`
	// Created is when the journal (or its last Reset) began.
	Created time.Time `json:"created"`
	// Values are the writer's own small facts (for example the original
	// modification time of the directory the journal lives in).
	Values map[string]string `json:"values,omitempty"`
}

// Entry is one staged file: the bytes of Source, which had the given Size,
// ModTime and Inode when they were staged, are to be stored at Key.
type Entry struct {
	Key string `json:"key"`
	// Source is the local file holding the bytes, as the writer names it
	// (store: the path relative to the uploaded directory; the mount: the
	// path of the staged copy).
	Source  string    `json:"source"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	Inode   uint64    `json:"ino,omitempty"`
	Mode    uint32    `json:"mode,omitempty"`
	// Sums are the whole file's checksums, computed when it was staged.
	Sums backends.Checksums `json:"sums"`
	// PartSize is the part size of Upload (every part but the last has
	// it), so that a resumed upload cuts the file the same way.
	PartSize int64 `json:"part_size,omitempty"`
	// Base is, for the read-write mount, the version of the object the
	// staged bytes were copied from (nil: the file was new or truncated
	// without a known version); an upload checks it is still current.
	Base *backends.Version `json:"base,omitempty"`
	// Upload is the multipart upload in flight for Key, if any.
	Upload *backends.Upload `json:"upload,omitempty"`
	// Parts are the parts of Upload known to be stored, ascending by
	// number, one per number.
	Parts []backends.Part `json:"parts,omitempty"`
}

func (e *Entry) clone() Entry {
	c := *e
	if e.Base != nil {
		b := *e.Base
		c.Base = &b
	}
	if e.Upload != nil {
		u := *e.Upload
		c.Upload = &u
	}
	c.Parts = slices.Clone(e.Parts)
	return c
}

// Journal is an open journal. Its methods are safe for concurrent use.
//
// INVARIANT: every live entry has been appended to f (as a stage record
// followed by its upload and part records, or as one compacted stage
// record); Parts of an entry are sorted by number without duplicates.
type Journal struct {
	dir  string
	lock *os.File

	mu       sync.Mutex
	f        *os.File          // GUARDED_BY(mu); nil once closed
	meta     Meta              // GUARDED_BY(mu)
	entries  map[string]*Entry // GUARDED_BY(mu)
	records  int               // GUARDED_BY(mu): lines in f
	dirty    bool              // GUARDED_BY(mu): appended since the last fsync
	lastSync time.Time         // GUARDED_BY(mu)
}

// Exists reports whether dir holds a journal log (of a run that did not
// finish).
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, LogName))
	return err == nil
}

// Open opens the journal in dir, creating dir and an empty journal when
// there is none, and replays it. It fails with ErrLocked when another
// process has it open.
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("journal: lock %s: %w", dir, err)
	}
	j := &Journal{dir: dir, lock: lock, entries: map[string]*Entry{}, lastSync: time.Now()}
	if err := j.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return j, nil
}

// Dir is the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// Meta returns the journal's meta (zero for a new journal).
func (j *Journal) Meta() Meta {
	j.mu.Lock()
	defer j.mu.Unlock()
	m := j.meta
	m.Values = maps.Clone(m.Values)
	return m
}

// SetMeta records m as the journal's meta, keeping the entries.
func (j *Journal) SetMeta(m Meta) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	m.Values = maps.Clone(m.Values)
	return j.append(record{Op: opMeta, Meta: &m}, true)
}

// Reset forgets every entry and records m as the meta, as if the journal
// were new.
func (j *Journal) Reset(m Meta) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	m.Values = maps.Clone(m.Values)
	return j.append(record{Op: opReset, Meta: &m}, true)
}

// Entries returns copies of the live entries, ascending by key.
func (j *Journal) Entries() []Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Entry, 0, len(j.entries))
	for _, k := range slices.Sorted(maps.Keys(j.entries)) {
		out = append(out, j.entries[k].clone())
	}
	return out
}

// Len is the number of live entries.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries)
}

// Entry returns a copy of the live entry for key.
func (j *Journal) Entry(key string) (Entry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.entries[key]
	if !ok {
		return Entry{}, false
	}
	return e.clone(), true
}

// Stage records e (Upload and Parts included as given, normally none),
// replacing any live entry for e.Key. The caller owns what the replaced
// entry's upload left in the store (see Entry before staging).
func (j *Journal) Stage(e Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	c := e.clone()
	slices.SortFunc(c.Parts, func(a, b backends.Part) int { return a.Number - b.Number })
	c.Parts = slices.CompactFunc(c.Parts, func(a, b backends.Part) bool { return a.Number == b.Number })
	return j.append(record{Op: opStage, Entry: &c}, false)
}

// StartUpload records that the multipart upload u, cut in parts of
// partSize bytes, was created for key, forgetting the parts of any earlier
// upload of the entry. It is synced before it returns, so that an upload
// id is never lost to a crash.
func (j *Journal) StartUpload(key string, u backends.Upload, partSize int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.entries[key]; !ok {
		return fmt.Errorf("%w: %q", ErrNotStaged, key)
	}
	return j.append(record{Op: opUpload, Key: key, Upload: &u, PartSize: partSize}, true)
}

// AddPart records that part p of key's current upload is stored.
func (j *Journal) AddPart(key string, p backends.Part) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e, ok := j.entries[key]; !ok || e.Upload == nil {
		return fmt.Errorf("%w: %q (no upload)", ErrNotStaged, key)
	}
	return j.append(record{Op: opPart, Key: key, Part: &p}, false)
}

// Done records that key is finished and forgets its entry. Finishing a key
// that is not staged is a no-op.
func (j *Journal) Done(key string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.entries[key]; !ok {
		return nil
	}
	return j.append(record{Op: opDone, Key: key}, false)
}

// Sync makes every record so far durable.
func (j *Journal) Sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.syncLocked()
}

// Close syncs and closes the journal, keeping it on disk for the next
// Open, and releases the lock. Closing twice is a no-op.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.syncLocked()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	j.lock.Close()
	return err
}

// Remove closes the journal and deletes its files, and its directory when
// nothing else is left in it: the end of a run that finished everything.
func (j *Journal) Remove() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	var errs []error
	for _, name := range []string{LogName, tmpName, lockName} {
		if err := os.Remove(filepath.Join(j.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	j.lock.Close()
	if err := os.Remove(j.dir); err != nil && !errors.Is(err, os.ErrNotExist) && !isNotEmpty(err) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("journal: remove: %w", errors.Join(errs...))
	}
	return nil
}

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}
