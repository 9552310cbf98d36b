package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/journal"
	"github.com/ferryio/ferry/fs/objmeta"
)

// dirContentType is the content type of directory markers.
const dirContentType = "application/x-directory"

// execute carries out a plan: stage the uploads in the journal, abort the
// stale uploads, store the files, then (only when every file succeeded)
// delete what is not local.
func (r *runner) execute(ctx context.Context, p *plan) error {
	for _, u := range p.uploads {
		if u.resume != nil {
			continue // staged by the earlier run, for this very file state
		}
		e := journal.Entry{Key: u.item.Key, Source: u.item.Rel, Size: u.item.Size, ModTime: u.item.ModTime,
			Inode: u.item.Ino, Mode: uint32(u.item.Mode), Sums: u.sums}
		if err := r.j.Stage(e); err != nil {
			return err
		}
	}
	if r.j != nil {
		for _, k := range p.done {
			if err := r.j.Done(k); err != nil {
				return err
			}
		}
		if err := r.j.Sync(); err != nil {
			return err
		}
	}
	r.abortAll(ctx, p.aborts)

	var failed atomic.Int64
	err := r.each(ctx, len(p.uploads), func(ctx context.Context, i int) error {
		u := p.uploads[i]
		err := r.store(ctx, u)
		if err == nil {
			return nil
		}
		r.o.Tracker.Failed()
		if errors.Is(err, ErrChanged) {
			failed.Add(1)
			r.event("error", err.Error(), map[string]any{"key": u.item.Key})
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if n := failed.Load(); n > 0 {
		r.count(func(res *Result) { res.Failed = int(n) })
		return fmt.Errorf("%d file(s) changed while being stored; run again to store them (%w)", n, ErrChanged)
	}
	return r.deleteAll(ctx, p.deletes)
}

// abortAll aborts uploads, at most Concurrency at once. A failure is
// reported and does not stop the run: the upload stays pending and is
// found again next time.
func (r *runner) abortAll(ctx context.Context, ups []backends.Upload) {
	if r.mp == nil {
		return
	}
	var g errgroup.Group
	g.SetLimit(r.o.Concurrency)
	for _, u := range ups {
		g.Go(func() error {
			if err := r.mp.AbortUpload(ctx, u); err != nil {
				r.event("warning", fmt.Sprintf("could not abort the pending upload of %s: %v", u.Key, err), map[string]any{"key": u.Key})
				return nil
			}
			r.count(func(res *Result) { res.Aborted++ })
			r.o.Logger.Debug("aborted a pending upload", "key", u.Key, "started", u.Started)
			return nil
		})
	}
	_ = g.Wait()
}

// deleteAll deletes keys, at most Concurrency at once.
func (r *runner) deleteAll(ctx context.Context, keys []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.o.Concurrency)
	for _, k := range keys {
		g.Go(func() error {
			if err := r.o.Store.Delete(gctx, k); err != nil {
				return err
			}
			r.count(func(res *Result) { res.Deleted++ })
			r.o.Logger.Debug("deleted", "key", k)
			return nil
		})
	}
	return g.Wait()
}

// store uploads one file or marker, verifies it and records it done.
func (r *runner) store(ctx context.Context, u *upload) error {
	key := u.item.Key
	if u.item.Dir {
		return r.putMarker(ctx, u)
	}
	path := filepath.Join(r.o.Dir, u.item.Rel)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w (it vanished)", u.item.Rel, ErrChanged)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !sameState(stateOf(fi), u.item.fileState) {
		return fmt.Errorf("%s: %w", u.item.Rel, ErrChanged)
	}
	opts := backends.PutOptions{ContentType: objmeta.ContentType(u.item.Rel),
		Metadata: objmeta.Metadata(r.o.MtimeFormat, u.item.ModTime, u.item.Mode), Checksums: u.sums}
	var info backends.ObjectInfo
	if ps, multi := r.partSize(u); multi {
		info, err = r.multipart(ctx, f, u, opts, ps)
	} else {
		info, err = r.put(ctx, key, io.NewSectionReader(f, 0, u.item.Size), u.item.Size, opts)
	}
	if err == nil {
		err = r.verify(ctx, key, info, u.sums)
	}
	if errors.Is(err, backends.ErrChecksum) {
		// The bytes read differ from those hashed when planning: the file
		// was modified in place.
		return fmt.Errorf("%s: %w: %w", u.item.Rel, ErrChanged, err)
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", u.item.Rel, err)
	}
	if fi, err := f.Stat(); err == nil && sameState(stateOf(fi), u.item.fileState) {
		r.recordFile(f, sumRecord{Size: u.item.Size, MtimeNS: u.item.ModTime.UnixNano(), Ino: u.item.Ino,
			Sums: u.sums, Target: targetID(r.o.Target, key), ETag: info.Version.ETag})
	}
	return r.finished(key)
}

func sameState(a, b fileState) bool {
	return a.Size == b.Size && a.ModTime.Equal(b.ModTime) && a.Ino == b.Ino
}

// finished records key done in the journal and the counters.
func (r *runner) finished(key string) error {
	if err := r.j.Done(key); err != nil {
		return err
	}
	r.o.Logger.Debug("file stored", "key", key)
	r.o.Tracker.FileDone()
	r.count(func(res *Result) { res.Uploaded++ })
	return nil
}

// put stores body in one request.
func (r *runner) put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	if err := r.sem.Acquire(ctx, 1); err != nil {
		return backends.ObjectInfo{}, err
	}
	defer r.sem.Release(1)
	info, err := r.o.Store.Put(ctx, key, body, size, opts)
	if err != nil {
		return info, err
	}
	r.o.Tracker.AddBytes(size)
	r.count(func(res *Result) { res.UploadedBytes += size })
	return info, nil
}

// emptyCRC32C is the CRC32C of no bytes.
var emptyCRC32C = []byte{0, 0, 0, 0}

// putMarker stores an empty directory's marker.
func (r *runner) putMarker(ctx context.Context, u *upload) error {
	emptyMD5 := md5.Sum(nil)
	opts := backends.PutOptions{ContentType: dirContentType,
		Metadata:  objmeta.Metadata(r.o.MtimeFormat, u.item.ModTime, u.item.Mode),
		Checksums: backends.Checksums{MD5: emptyMD5[:], CRC32C: emptyCRC32C}}
	if _, err := r.put(ctx, u.item.Key, bytes.NewReader(nil), 0, opts); err != nil {
		return fmt.Errorf("store %s: %w", u.item.Key, err)
	}
	return r.finished(u.item.Key)
}

// verify compares the store's checksums of the new object (from the
// response, else from a HEAD) with the file's. On a mismatch the object is
// deleted and the error matches backends.ErrChecksum. A store that reports
// no checksum at all was trusted with the per-request checksums it
// verified.
func (r *runner) verify(ctx context.Context, key string, info backends.ObjectInfo, sums backends.Checksums) error {
	checked, err := compareSums(info.Checksums, sums)
	if err == nil && !checked {
		st, serr := r.o.Store.Stat(ctx, key)
		if serr != nil {
			return serr
		}
		checked, err = compareSums(st.Checksums, sums)
	}
	if err != nil {
		if derr := r.o.Store.Delete(ctx, key); derr != nil {
			r.o.Logger.Warn("could not delete an object that failed verification", "key", key, "err", derr)
		}
		return fmt.Errorf("%s: %w", key, err)
	}
	if !checked {
		r.o.Logger.Debug("store reports no whole-object checksum", "key", key)
	}
	return nil
}

// compareSums reports whether got had a checksum to compare and, if one
// differs, an error matching backends.ErrChecksum.
func compareSums(got, want backends.Checksums) (bool, error) {
	checked := false
	if len(got.MD5) > 0 {
		checked = true
		if !bytes.Equal(got.MD5, want.MD5) {
			return true, fmt.Errorf("%w: store MD5 %x, file %x", backends.ErrChecksum, got.MD5, want.MD5)
		}
	}
	if len(got.CRC32C) > 0 {
		checked = true
		if !bytes.Equal(got.CRC32C, want.CRC32C) {
			return true, fmt.Errorf("%w: store CRC32C %x, file %x", backends.ErrChecksum, got.CRC32C, want.CRC32C)
		}
	}
	return checked, nil
}
