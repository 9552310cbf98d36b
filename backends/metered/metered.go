// Package metered wraps a backend to count the requests made through it by
// kind (LIST, HEAD, GET, PUT, DELETE and the multipart calls) and the bytes
// read and written, for the summaries of load and store, for tests that
// assert "a re-run makes listing requests only", and for Prometheus.
//
// A List or ListDir call counts as one LIST whatever the number of pages the
// driver fetched; every other method is one request of its kind.
package metered

import (
	"context"
	"fmt"
	"io"
	"iter"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/ferryio/ferry/backends"
)

// Request kinds.
const (
	List     = "LIST"
	Head     = "HEAD"
	Get      = "GET"
	Put      = "PUT"
	Delete   = "DELETE"
	Create   = "CREATE-UPLOAD"
	Part     = "UPLOAD-PART"
	Parts    = "LIST-PARTS"
	Complete = "COMPLETE-UPLOAD"
	Abort    = "ABORT-UPLOAD"
	Uploads  = "LIST-UPLOADS"
)

var kinds = [...]string{List, Head, Get, Put, Delete, Create, Part, Parts, Complete, Abort, Uploads}

// Observer receives every counted event; use it to feed Prometheus. Its
// methods must be safe for concurrent use and fast.
type Observer interface {
	Request(kind string)
	BytesRead(n int64)
	BytesWritten(n int64)
}

// Counts are the counters of a Backend. The zero value is ready to use.
type Counts struct {
	req     [len(kinds)]atomic.Int64 // indexed like kinds
	read    atomic.Int64
	written atomic.Int64
	obs     Observer
}

func (c *Counts) add(kind string) {
	for i, k := range kinds {
		if k == kind {
			c.req[i].Add(1)
		}
	}
	if c.obs != nil {
		c.obs.Request(kind)
	}
}

// Requests returns the number of requests of kind made so far.
func (c *Counts) Requests(kind string) int64 {
	for i, k := range kinds {
		if k == kind {
			return c.req[i].Load()
		}
	}
	return 0
}

// Snapshot returns the non-zero request counts by kind.
func (c *Counts) Snapshot() map[string]int64 {
	m := map[string]int64{}
	for i, k := range kinds {
		if n := c.req[i].Load(); n > 0 {
			m[k] = n
		}
	}
	return m
}

// BytesRead and BytesWritten return the payload bytes moved so far.
func (c *Counts) BytesRead() int64    { return c.read.Load() }
func (c *Counts) BytesWritten() int64 { return c.written.Load() }

// String renders the counts as "LIST=3 GET=10", kinds sorted, for summaries.
func (c *Counts) String() string {
	snap := c.Snapshot()
	if len(snap) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(snap))
	for k, n := range snap {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// New wraps b. obs may be nil. The returned backend keeps the Multipart
// capability when b has it.
func New(b backends.Backend, obs Observer) (backends.Backend, *Counts) {
	c := &Counts{obs: obs}
	w := &wrapper{b: b, c: c}
	if mp, ok := b.(backends.Multipart); ok {
		return &multipartWrapper{wrapper: w, mp: mp}, c
	}
	return w, c
}

type wrapper struct {
	b backends.Backend
	c *Counts
}

func (w *wrapper) String() string { return w.b.String() }

func (w *wrapper) List(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return w.counted(w.b.List(ctx, prefix))
}

func (w *wrapper) ListDir(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return w.counted(w.b.ListDir(ctx, prefix))
}

// counted counts one LIST when the sequence is first ranged over.
func (w *wrapper) counted(src iter.Seq2[backends.Entry, error]) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		w.c.add(List)
		src(yield)
	}
}

func (w *wrapper) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	w.c.add(Head)
	return w.b.Stat(ctx, key)
}

func (w *wrapper) GetRange(ctx context.Context, key string, offset, length int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	w.c.add(Get)
	rc, info, err := w.b.GetRange(ctx, key, offset, length, opts)
	if err != nil {
		return nil, info, err
	}
	return &countingReader{ReadCloser: rc, c: w.c}, info, nil
}

type countingReader struct {
	io.ReadCloser
	c *Counts
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.c.read.Add(int64(n))
	if r.c.obs != nil && n > 0 {
		r.c.obs.BytesRead(int64(n))
	}
	return n, err
}

func (w *wrapper) wrote(n int64) {
	w.c.written.Add(n)
	if w.c.obs != nil {
		w.c.obs.BytesWritten(n)
	}
}

func (w *wrapper) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	w.c.add(Put)
	info, err := w.b.Put(ctx, key, body, size, opts)
	if err == nil {
		w.wrote(size)
	}
	return info, err
}

func (w *wrapper) Delete(ctx context.Context, key string) error {
	w.c.add(Delete)
	return w.b.Delete(ctx, key)
}

type multipartWrapper struct {
	*wrapper
	mp backends.Multipart
}

func (w *multipartWrapper) CreateUpload(ctx context.Context, key string, opts backends.PutOptions) (backends.Upload, error) {
	w.c.add(Create)
	return w.mp.CreateUpload(ctx, key, opts)
}

func (w *multipartWrapper) UploadPart(ctx context.Context, u backends.Upload, n int, body io.ReadSeeker, size int64) (backends.Part, error) {
	w.c.add(Part)
	p, err := w.mp.UploadPart(ctx, u, n, body, size)
	if err == nil {
		w.wrote(size)
	}
	return p, err
}

func (w *multipartWrapper) ListParts(ctx context.Context, u backends.Upload) ([]backends.Part, error) {
	w.c.add(Parts)
	return w.mp.ListParts(ctx, u)
}

func (w *multipartWrapper) CompleteUpload(ctx context.Context, u backends.Upload, parts []backends.Part) (backends.ObjectInfo, error) {
	w.c.add(Complete)
	return w.mp.CompleteUpload(ctx, u, parts)
}

func (w *multipartWrapper) AbortUpload(ctx context.Context, u backends.Upload) error {
	w.c.add(Abort)
	return w.mp.AbortUpload(ctx, u)
}

func (w *multipartWrapper) ListUploads(ctx context.Context, prefix string) iter.Seq2[backends.Upload, error] {
	src := w.mp.ListUploads(ctx, prefix)
	return func(yield func(backends.Upload, error) bool) {
		w.c.add(Uploads)
		src(yield)
	}
}

func (w *multipartWrapper) MinPartSize() int64 { return w.mp.MinPartSize() }
func (w *multipartWrapper) MaxParts() int      { return w.mp.MaxParts() }
