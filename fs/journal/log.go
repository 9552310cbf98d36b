package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ferryio/ferry/backends"
)

// This file holds the log itself: its line format, replay, appends and
// compaction.

// record is one line of the log.
type record struct {
	Op     string           `json:"op"`
	Meta   *Meta            `json:"meta,omitempty"`
	Entry  *Entry           `json:"entry,omitempty"`
	Key    string           `json:"key,omitempty"`
	Upload *backends.Upload `json:"upload,omitempty"`
	Part   *backends.Part   `json:"part,omitempty"`
	// PartSize goes with Upload.
	PartSize int64 `json:"part_size,omitempty"`
}

const (
	opMeta   = "meta"
	opStage  = "stage"
	opUpload = "upload"
	opPart   = "part"
	opDone   = "done"
	opReset  = "reset"
)

// load replays the log and, when it holds dead records or a torn tail,
// rewrites it compactly.
func (j *Journal) load() error {
	path := filepath.Join(j.dir, LogName)
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return j.rewrite()
	case err != nil:
		return fmt.Errorf("journal: %w", err)
	}
	n, clean, err := j.replay(f)
	f.Close()
	if err != nil {
		return err
	}
	j.records = n
	if !clean || n > len(j.entries)+1 {
		return j.rewrite()
	}
	j.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// replay applies the log's records and returns how many there were and
// whether the log ended cleanly (no torn or corrupt tail).
func (j *Journal) replay(r io.Reader) (int, bool, error) {
	br := bufio.NewReader(r)
	n := 0
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return n, len(line) == 0, nil
		}
		if err != nil {
			return n, false, fmt.Errorf("journal: read: %w", err)
		}
		rec, ok := decode(line)
		if !ok {
			return n, false, nil
		}
		j.apply(rec)
		n++
	}
}

func encode(rec record) ([]byte, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("journal: encode: %w", err)
	}
	line := fmt.Appendf(nil, "%08x ", crc32.Checksum(body, castagnoli))
	line = append(line, body...)
	return append(line, '\n'), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func decode(line []byte) (record, bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	sum, body, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(sum) != 8 {
		return record{}, false
	}
	var want uint32
	if _, err := fmt.Sscanf(string(sum), "%08x", &want); err != nil || crc32.Checksum(body, castagnoli) != want {
		return record{}, false
	}
	var rec record
	if err := json.Unmarshal(body, &rec); err != nil {
		return record{}, false
	}
	return rec, true
}

// apply changes the in-memory state by one record. Records that do not fit
// the state (a part for an unknown key) are ignored: they can only follow a
// record that a crash tore away.
func (j *Journal) apply(rec record) {
	switch rec.Op {
	case opMeta:
		if rec.Meta != nil {
			j.meta = *rec.Meta
		}
	case opReset:
		clear(j.entries)
		if rec.Meta != nil {
			j.meta = *rec.Meta
		}
	case opStage:
		if rec.Entry != nil {
			e := rec.Entry.clone()
			j.entries[e.Key] = &e
		}
	case opUpload:
		if e := j.entries[rec.Key]; e != nil && rec.Upload != nil {
			u := *rec.Upload
			e.Upload, e.Parts, e.PartSize = &u, nil, rec.PartSize
		}
	case opPart:
		if e := j.entries[rec.Key]; e != nil && e.Upload != nil && rec.Part != nil {
			e.Parts = addPart(e.Parts, *rec.Part)
		}
	case opDone:
		delete(j.entries, rec.Key)
	}
}

// addPart inserts p into parts (sorted by number), replacing a part of the
// same number.
func addPart(parts []backends.Part, p backends.Part) []backends.Part {
	i, found := slices.BinarySearchFunc(parts, p.Number, func(q backends.Part, n int) int { return q.Number - n })
	if found {
		parts[i] = p
		return parts
	}
	return slices.Insert(parts, i, p)
}

// rewrite replaces the log atomically with the live state: meta and one
// stage record per entry. It must be called with mu held (or before the
// journal is shared).
func (j *Journal) rewrite() error {
	tmp := filepath.Join(j.dir, tmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	w := bufio.NewWriter(f)
	meta := j.meta
	recs := []record{{Op: opMeta, Meta: &meta}}
	for _, k := range slices.Sorted(maps.Keys(j.entries)) {
		recs = append(recs, record{Op: opStage, Entry: j.entries[k]})
	}
	for _, rec := range recs {
		line, err := encode(rec)
		if err == nil {
			_, err = w.Write(line)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("journal: %w", err)
		}
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(j.dir, LogName))
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		return fmt.Errorf("journal: compact: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, err = os.OpenFile(filepath.Join(j.dir, LogName), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.records, j.dirty, j.lastSync = len(recs), false, time.Now()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// append writes one record (mu held), applies it, and syncs when asked or
// when the group-commit interval has passed; it compacts the log when it
// has grown past four times the live state.
func (j *Journal) append(rec record, sync bool) error {
	if j.f == nil {
		return ErrClosed
	}
	line, err := encode(rec)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(line); err != nil {
		return fmt.Errorf("journal: write: %w", err)
	}
	j.apply(rec)
	j.records++
	j.dirty = true
	if j.records > 4*(len(j.entries)+1)+1024 {
		return j.rewrite()
	}
	if sync || time.Since(j.lastSync) >= SyncInterval {
		return j.syncLocked()
	}
	return nil
}

func (j *Journal) syncLocked() error {
	if j.f == nil {
		return ErrClosed
	}
	if !j.dirty {
		return nil
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: sync: %w", err)
	}
	j.dirty, j.lastSync = false, time.Now()
	return nil
}
