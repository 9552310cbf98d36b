package load

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/ferryio/ferry/backends"
)

// WorkDir is the hidden directory, directly under the destination, that
// holds a run's lock-free work: the temporary file of every object being
// fetched and the resume journal of every large one. It is removed when a
// run succeeds. Keys under it (".ferry-load" and ".ferry-load/...") cannot be
// loaded and are reported as invalid keys.
const WorkDir = ".ferry-load"

// workNames returns the temporary file and journal names (relative to the
// destination root) of key: a hash of the key, so that any key gets a
// short, safe name.
func workNames(key string) (part, journal string) {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:16])
	return path.Join(WorkDir, h+".part"), path.Join(WorkDir, h+".json")
}

// partJournal is the resume state of one large object, saved as JSON next
// to its temporary file: the object version the temporary file holds parts
// of, and which parts (of PartSize bytes, numbered from 0) are complete.
//
// Boot is the kernel's boot id when the parts were written. A process that
// is killed (the container restart this is for) leaves its written bytes in
// the page cache, where the next process reads them, so within one boot a
// part is journaled as soon as it is written, with no fsync in the way of
// the download. After a reboot unsynced bytes may be lost, so a journal of
// another boot is not trusted and the object is fetched afresh. Where the
// boot id cannot be read, every journal write follows an fdatasync of the
// temporary file instead, and Synced says so: such a journal is trusted
// across reboots.
type partJournal struct {
	Key      string           `json:"key"`
	Version  backends.Version `json:"version"`
	Size     int64            `json:"size"`
	PartSize int64            `json:"part_size"`
	Done     []int            `json:"done"`
	Boot     string           `json:"boot,omitempty"`
	Synced   bool             `json:"synced,omitempty"`
}

// trusted reports whether the parts j records can be reused by a process
// running in boot (see partJournal).
func (j *partJournal) trusted(boot string) bool {
	return j.Synced || (j.Boot != "" && j.Boot == boot)
}

// bootID returns the kernel's boot id, or "" where it cannot be read.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loadJournal reads the journal at name. It returns nil when there is none
// or it is unreadable (a journal is only a hint: the download then starts
// afresh).
func loadJournal(root *os.Root, name string) *partJournal {
	b, err := root.ReadFile(name)
	if err != nil {
		return nil
	}
	var j partJournal
	if json.Unmarshal(b, &j) != nil {
		return nil
	}
	return &j
}

// covered returns, for an object of size bytes read in parts of partSize,
// which parts lie wholly inside the parts j records as done, so that a
// journal written with another part size still counts.
func (j *partJournal) covered(size, partSize int64) func(int) bool {
	type span struct{ from, to int64 }
	var spans []span
	done := slices.Clone(j.Done)
	slices.Sort(done)
	for _, p := range done {
		from := int64(p) * j.PartSize
		to := min(from+j.PartSize, size)
		if from < 0 || from >= size {
			continue
		}
		if n := len(spans); n > 0 && spans[n-1].to >= from {
			spans[n-1].to = max(spans[n-1].to, to)
			continue
		}
		spans = append(spans, span{from, to})
	}
	return func(i int) bool {
		from := int64(i) * partSize
		to := min(from+partSize, size)
		k, _ := slices.BinarySearchFunc(spans, from, func(s span, v int64) int {
			switch {
			case s.to <= v:
				return -1
			case s.from > v:
				return 1
			}
			return 0
		})
		return k < len(spans) && spans[k].from <= from && to <= spans[k].to
	}
}

// journalWriter records completed parts of one download with group
// commit: a caller that finds no write in progress syncs the temporary file
// and rewrites the journal with every part recorded so far; callers that
// arrive meanwhile wait for the next such write. partDone returns only once
// its part is journaled, so a worker never fetches a new part while its
// last one is unrecorded: a kill loses at most the parts in flight. When the
// journal is Synced, a part is journaled only after an fdatasync of the
// temporary file that covers its bytes; otherwise the journal is trusted
// only within its boot (see partJournal).
type journalWriter struct {
	root *os.Root
	name string
	file *os.File // the temporary file, synced before each journal write

	mu       sync.Mutex
	cond     *sync.Cond
	state    partJournal // GUARDED_BY(mu)
	added    int         // GUARDED_BY(mu): parts recorded in state.Done by partDone
	durable  int         // GUARDED_BY(mu): of those, how many the journal on disk holds
	flushing bool        // GUARDED_BY(mu): a caller is writing
	err      error       // GUARDED_BY(mu): the first failed write
}

func newJournalWriter(root *os.Root, name string, file *os.File, j partJournal) *journalWriter {
	w := &journalWriter{root: root, name: name, file: file, state: j}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// partDone records part i and returns once the journal on disk holds it.
func (w *journalWriter) partDone(i int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.state.Done = append(w.state.Done, i)
	w.added++
	mine := w.added
	for w.durable < mine {
		switch {
		case w.err != nil:
			return w.err
		case w.flushing:
			w.cond.Wait()
			continue
		}
		w.flushing = true
		target := w.added
		snap := w.state
		snap.Done = slices.Sorted(slices.Values(w.state.Done))
		w.mu.Unlock()
		err := w.write(snap)
		w.mu.Lock()
		w.flushing = false
		if err != nil {
			w.err = err
		} else {
			w.durable = target
		}
		w.cond.Broadcast()
	}
	return nil
}

// save writes the journal as it is now (the start of a download).
func (w *journalWriter) save() error {
	w.mu.Lock()
	snap := w.state
	snap.Done = slices.Sorted(slices.Values(w.state.Done))
	w.mu.Unlock()
	b, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	return writeAtomic(w.root, w.name, b)
}

func (w *journalWriter) write(j partJournal) error {
	if j.Synced {
		if err := fdatasync(w.file); err != nil {
			return err
		}
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return writeAtomic(w.root, w.name, b)
}

// writeAtomic replaces name with b: a temporary file renamed over it, so a
// reader sees the old or the new content, never a torn one.
func writeAtomic(root *os.Root, name string, b []byte) error {
	tmp := name + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		_ = root.Remove(tmp)
	}
	return err
}

// removeWork removes an object's temporary file and journal, if any.
func removeWork(root *os.Root, key string) error {
	part, journal := workNames(key)
	var errs []error
	for _, n := range []string{part, journal, journal + ".tmp"} {
		if err := root.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
