package disktier

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Open takes the directory opts.Dir for this process and rebuilds the index
// of the blocks it holds: block files are accounted by size and ordered by
// mtime (oldest = least recently used), leftover temporary files are
// removed, and blocks beyond MaxBytes are evicted. Files Open does not
// recognise are left alone and not accounted. Block files are not read
// here; a torn one is found by the Get that reads it.
//
// If another Tier, in this process or another, has the directory, Open
// fails with an error wrapping ErrLocked that names the directory. The lock
// is an flock, so it is released when its holder exits, however it exits.
func Open(opts Options) (*Tier, error) {
	if opts.Dir == "" {
		return nil, errors.New("disk cache: no directory")
	}
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("disk cache: MaxBytes must be positive, got %d", opts.MaxBytes)
	}
	t := &Tier{
		dir:      filepath.Clean(opts.Dir),
		maxBytes: opts.MaxBytes,
		now:      opts.Now,
		touch:    opts.TouchInterval,
		onEvict:  opts.OnEvict,
		index:    make(map[ID]*list.Element),
		lru:      list.New(),
	}
	t.tmpDir = filepath.Join(t.dir, tmpDirName)
	if t.now == nil {
		t.now = time.Now
	}
	switch {
	case t.touch == 0:
		t.touch = DefaultTouchInterval
	case t.touch < 0:
		t.touch = 0
	}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	lf, err := lock(t.dir)
	if err != nil {
		return nil, err
	}
	t.lockFile = lf
	if err := t.load(); err != nil {
		unlock(lf)
		return nil, fmt.Errorf("disk cache %s: %w", t.dir, err)
	}
	return t, nil
}

// load empties tmp/ and indexes the block files of t.dir. Only Open calls
// it, before t is shared, so it takes no lock.
func (t *Tier) load() error {
	if err := os.RemoveAll(t.tmpDir); err != nil {
		return err
	}
	if err := os.Mkdir(t.tmpDir, 0o755); err != nil {
		return err
	}
	top, err := os.ReadDir(t.dir)
	if err != nil {
		return err
	}
	var found []*entry
	for _, d := range top {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		sub := filepath.Join(t.dir, d.Name())
		files, err := os.ReadDir(sub)
		if err != nil {
			return err
		}
		for _, f := range files {
			id, ok := parseName(d.Name(), f.Name())
			if !ok || !f.Type().IsRegular() {
				continue
			}
			info, err := f.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if info.Size() < headerSize {
				// Torn for sure; no need to wait for a read to say so.
				_ = os.Remove(filepath.Join(sub, f.Name()))
				continue
			}
			found = append(found, &entry{id: id, size: info.Size(), touched: info.ModTime()})
		}
	}
	slices.SortFunc(found, func(a, b *entry) int { return a.touched.Compare(b.touched) })
	for _, e := range found {
		t.index[e.id] = t.lru.PushBack(e)
		t.used += e.size
	}
	t.evictLocked()
	return nil
}

// lock creates and flocks dir's lock file without blocking.
func lock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("disk cache: lock %s: %w", dir, err)
	}
	return f, nil
}

// unlock releases the flock taken by lock (closing the file releases it).
func unlock(f *os.File) error {
	return f.Close()
}
