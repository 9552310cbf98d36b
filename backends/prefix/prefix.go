// Package prefix wraps a backend so that every key is relative to a key
// prefix: key "a/b" of the wrapper is key prefix+"a/b" of the wrapped store.
// Listings, errors and uploads are translated both ways, so callers never see
// the prefix. The wrapper keeps the Multipart capability when the wrapped
// backend has it.
package prefix

import (
	"context"
	"errors"
	"io"
	"iter"
	"strings"

	"github.com/ferryio/ferry/backends"
)

// New returns b seen through prefix p. An empty p returns b itself. p is used
// as given: pass "data/" to scope to a folder, since "data" would also match
// "database/...".
func New(b backends.Backend, p string) backends.Backend {
	if p == "" {
		return b
	}
	w := &wrapper{b: b, p: p}
	if mp, ok := b.(backends.Multipart); ok {
		return &multipartWrapper{wrapper: w, mp: mp}
	}
	return w
}

type wrapper struct {
	b backends.Backend
	p string
}

func (w *wrapper) String() string { return w.b.String() + "/" + strings.TrimSuffix(w.p, "/") }

func (w *wrapper) strip(info backends.ObjectInfo) backends.ObjectInfo {
	info.Key = strings.TrimPrefix(info.Key, w.p)
	return info
}

// fixErr rewrites the key in a driver *Error so that messages name the key
// the caller used, keeping Kind and cause.
func (w *wrapper) fixErr(err error) error {
	var be *backends.Error
	if err == nil || !errors.As(err, &be) {
		return err
	}
	cp := *be
	cp.Key = strings.TrimPrefix(be.Key, w.p)
	cp.Store = w.String()
	return &cp
}

func (w *wrapper) seq(src iter.Seq2[backends.Entry, error]) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		for e, err := range src {
			if err != nil {
				yield(backends.Entry{}, w.fixErr(err))
				return
			}
			e.ObjectInfo = w.strip(e.ObjectInfo)
			if !yield(e, nil) {
				return
			}
		}
	}
}

func (w *wrapper) List(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return w.seq(w.b.List(ctx, w.p+prefix))
}

func (w *wrapper) ListDir(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return w.seq(w.b.ListDir(ctx, w.p+prefix))
}

func (w *wrapper) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	info, err := w.b.Stat(ctx, w.p+key)
	return w.strip(info), w.fixErr(err)
}

func (w *wrapper) GetRange(ctx context.Context, key string, offset, length int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	rc, info, err := w.b.GetRange(ctx, w.p+key, offset, length, opts)
	return rc, w.strip(info), w.fixErr(err)
}

func (w *wrapper) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	info, err := w.b.Put(ctx, w.p+key, body, size, opts)
	return w.strip(info), w.fixErr(err)
}

func (w *wrapper) Delete(ctx context.Context, key string) error {
	return w.fixErr(w.b.Delete(ctx, w.p+key))
}

type multipartWrapper struct {
	*wrapper
	mp backends.Multipart
}

// inner and outer translate an Upload between the caller's keys and the
// wrapped store's keys.
func (w *multipartWrapper) inner(u backends.Upload) backends.Upload {
	u.Key = w.p + u.Key
	return u
}

func (w *multipartWrapper) outer(u backends.Upload) backends.Upload {
	u.Key = strings.TrimPrefix(u.Key, w.p)
	return u
}

func (w *multipartWrapper) CreateUpload(ctx context.Context, key string, opts backends.PutOptions) (backends.Upload, error) {
	u, err := w.mp.CreateUpload(ctx, w.p+key, opts)
	return w.outer(u), w.fixErr(err)
}

func (w *multipartWrapper) UploadPart(ctx context.Context, u backends.Upload, n int, body io.ReadSeeker, size int64) (backends.Part, error) {
	p, err := w.mp.UploadPart(ctx, w.inner(u), n, body, size)
	return p, w.fixErr(err)
}

func (w *multipartWrapper) ListParts(ctx context.Context, u backends.Upload) ([]backends.Part, error) {
	parts, err := w.mp.ListParts(ctx, w.inner(u))
	return parts, w.fixErr(err)
}

func (w *multipartWrapper) CompleteUpload(ctx context.Context, u backends.Upload, parts []backends.Part) (backends.ObjectInfo, error) {
	info, err := w.mp.CompleteUpload(ctx, w.inner(u), parts)
	return w.strip(info), w.fixErr(err)
}

func (w *multipartWrapper) AbortUpload(ctx context.Context, u backends.Upload) error {
	return w.fixErr(w.mp.AbortUpload(ctx, w.inner(u)))
}

func (w *multipartWrapper) ListUploads(ctx context.Context, prefix string) iter.Seq2[backends.Upload, error] {
	return func(yield func(backends.Upload, error) bool) {
		for u, err := range w.mp.ListUploads(ctx, w.p+prefix) {
			if err != nil {
				yield(backends.Upload{}, w.fixErr(err))
				return
			}
			if !yield(w.outer(u), nil) {
				return
			}
		}
	}
}

func (w *multipartWrapper) MinPartSize() int64 { return w.mp.MinPartSize() }
func (w *multipartWrapper) MaxParts() int      { return w.mp.MaxParts() }
