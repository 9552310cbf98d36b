package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
)

// partSize is the part size for u and whether u goes in parts: the
// configured size raised to the store's minimum and to what keeps the file
// within the store's part count (rounded up to a MiB). A resumed upload
// keeps the part size it was started with when that is still valid.
func (r *runner) partSize(u *upload) (int64, bool) {
	if r.mp == nil {
		return 0, false
	}
	size, maxParts := u.item.Size, int64(r.mp.MaxParts())
	valid := func(ps int64) bool {
		return ps >= r.mp.MinPartSize() && (maxParts <= 0 || (size+ps-1)/ps <= maxParts)
	}
	if u.resume != nil && u.resume.PartSize > 0 && valid(u.resume.PartSize) {
		return u.resume.PartSize, size > u.resume.PartSize
	}
	ps := max(r.o.PartSize, r.mp.MinPartSize())
	if maxParts > 0 && (size+ps-1)/ps > maxParts {
		const mib = 1 << 20
		ps = ((size+maxParts-1)/maxParts + mib - 1) / mib * mib
	}
	return ps, size > ps
}

// multipart uploads f in parts of ps bytes, continuing u.resume's upload
// when the store still has it: the parts the store lists with the right
// size are kept, the others sent. Parts go out concurrently, each a section
// of f, each holding one request slot. Nothing is visible at the key until
// CompleteUpload.
func (r *runner) multipart(ctx context.Context, f *os.File, u *upload, opts backends.PutOptions, ps int64) (backends.ObjectInfo, error) {
	key, size := u.item.Key, u.item.Size
	n := int((size + ps - 1) / ps)
	partLen := func(i int) int64 { return min(ps, size-int64(i-1)*ps) }

	upl, have, err := r.resumeParts(ctx, u, n, ps, partLen)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	if upl.ID == "" {
		if err := r.sem.Acquire(ctx, 1); err != nil {
			return backends.ObjectInfo{}, err
		}
		upl, err = r.mp.CreateUpload(ctx, key, opts)
		r.sem.Release(1)
		if err != nil {
			return backends.ObjectInfo{}, err
		}
		if err := r.j.StartUpload(key, upl, ps); err != nil {
			return backends.ObjectInfo{}, err
		}
	}

	parts := make([]backends.Part, n)
	g, gctx := errgroup.WithContext(ctx)
	var acquireErr error
	for i := 1; i <= n; i++ {
		if p, ok := have[i]; ok {
			parts[i-1] = p
			r.o.Tracker.AddBytes(p.Size)
			continue
		}
		if acquireErr = r.sem.Acquire(gctx, 1); acquireErr != nil {
			break
		}
		g.Go(func() error {
			defer r.sem.Release(1)
			ln := partLen(i)
			p, err := r.mp.UploadPart(gctx, upl, i, io.NewSectionReader(f, int64(i-1)*ps, ln), ln)
			if err != nil {
				return err
			}
			parts[i-1] = p
			if err := r.j.AddPart(key, p); err != nil {
				return err
			}
			r.o.Tracker.AddBytes(ln)
			r.count(func(res *Result) { res.UploadedBytes += ln })
			r.o.Logger.Debug("part stored", "key", key, "part", i, "parts", n, "size", ln)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return backends.ObjectInfo{}, err
	}
	if acquireErr != nil {
		return backends.ObjectInfo{}, acquireErr
	}
	if err := r.sem.Acquire(ctx, 1); err != nil {
		return backends.ObjectInfo{}, err
	}
	info, err := r.mp.CompleteUpload(ctx, upl, parts)
	r.sem.Release(1)
	if errors.Is(err, backends.ErrChecksum) {
		// The parts do not add up to the file as hashed: start afresh
		// next time.
		if aerr := r.mp.AbortUpload(ctx, upl); aerr != nil {
			r.o.Logger.Warn("could not abort an upload that failed verification", "key", key, "err", aerr)
		}
	}
	return info, err
}

// resumeParts returns the earlier run's upload and the parts of it that the
// store holds with the expected size (and, where both the journal and the
// store know it, the same CRC32C), or a zero Upload when there is nothing
// to continue. An upload that cannot be continued is aborted.
func (r *runner) resumeParts(ctx context.Context, u *upload, n int, ps int64, partLen func(int) int64) (backends.Upload, map[int]backends.Part, error) {
	prev := u.resume
	if prev == nil || prev.Upload == nil {
		return backends.Upload{}, nil, nil
	}
	if prev.PartSize != ps {
		r.abortStale(ctx, *prev.Upload)
		return backends.Upload{}, nil, nil
	}
	listed, err := r.mp.ListParts(ctx, *prev.Upload)
	if errors.Is(err, backends.ErrNotExist) {
		return backends.Upload{}, nil, nil // expired or aborted: start again
	}
	if err != nil {
		return backends.Upload{}, nil, err
	}
	journaled := map[int]backends.Part{}
	for _, p := range prev.Parts {
		journaled[p.Number] = p
	}
	have := map[int]backends.Part{}
	for _, p := range listed {
		if p.Number < 1 || p.Number > n || p.Size != partLen(p.Number) {
			continue
		}
		if jp, ok := journaled[p.Number]; ok && len(jp.CRC32C) > 0 && len(p.CRC32C) > 0 && !bytes.Equal(jp.CRC32C, p.CRC32C) {
			continue
		}
		have[p.Number] = p
	}
	r.count(func(res *Result) { res.Resumed++; res.PartsReused += len(have) })
	r.event("resume", fmt.Sprintf("resuming the upload of %s: %d of %d parts already stored", u.item.Key, len(have), n),
		map[string]any{"key": u.item.Key, "parts_stored": len(have), "parts": n})
	return *prev.Upload, have, nil
}

// abortStale aborts an upload this run replaces, reporting a failure
// without stopping (the upload is found again by the next run's cleanup).
func (r *runner) abortStale(ctx context.Context, u backends.Upload) {
	if err := r.mp.AbortUpload(ctx, u); err != nil {
		r.event("warning", fmt.Sprintf("could not abort the earlier upload of %s: %v", u.Key, err), map[string]any{"key": u.Key})
		return
	}
	r.count(func(res *Result) { res.Aborted++ })
}
