// Package objread reads one object of a store the way both load and mount
// need it: pinned to the version it was listed at, in ranged GETs that are
// retried with backoff on transient errors (resuming a broken body where it
// stopped), in parallel parts for whole-object downloads with bounded
// memory, and checked against the store's checksums.
//
// Every GET sends backends.ReadOptions.IfVersion with the pinned version, so
// bytes of two versions are never mixed: once the object is replaced or
// deleted, reads fail with an error matching backends.ErrPrecondition (or
// ErrNotExist, as the driver reports it), and those are never retried.
//
// The package logs nothing by itself; give Options.Logger to see retries at
// debug level.
package objread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/ferryio/ferry/backends"
)

// Defaults for Options.
const (
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 8
	DefaultBufferSize  = 128 << 10
)

// ErrNegativeOffset is returned by ReadAt for an offset below zero.
var ErrNegativeOffset = errors.New("objread: negative offset")

// Options tune an Object. The zero value gives the defaults.
type Options struct {
	// PartSize is the size of each ranged GET of Download (the last part
	// may be shorter); default DefaultPartSize. Parts are numbered from 0
	// at offset 0, so a part index means the same bytes in every run with
	// the same PartSize.
	PartSize int64
	// Concurrency is the number of ranged GETs Download runs at once for
	// this object; default DefaultConcurrency.
	Concurrency int
	// BufferSize is the copy buffer of each Download worker (and of the
	// read-back for verification); default DefaultBufferSize. Parts are
	// streamed into the destination through it, never held whole. 256
	// KiB is enough for full-speed copies (a loopback socket read or a
	// page-cache write rarely moves more at once) and stays in the CPU
	// cache between the read, the CRC and the write.
	BufferSize int
	// Buffers, when set, supplies the copy buffers (BufferSize is then
	// Buffers.Size()), so that several Downloads share them.
	Buffers *Buffers
	// Retry bounds the tries of each ranged GET.
	Retry Retry
	// Logger, when set, receives one debug line per retry.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Buffers != nil {
		o.BufferSize = o.Buffers.Size()
	}
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	o.Retry = o.Retry.withDefaults()
	return o
}

// Object reads one version of one object. It holds no open connection or
// buffer between calls and is safe for concurrent use.
type Object struct {
	b    backends.Backend
	info backends.ObjectInfo
	opts Options
	rt   retrier
}

// Open pins the object described by info (as listed or stat'ed through b:
// Key, Size, Version and, for verification, Checksums) for reading. It does
// no I/O. Every read sends IfVersion = info.Version; a zero Version (a
// store that reports none) leaves reads unpinned, and then only a change of
// size is noticed.
func Open(b backends.Backend, info backends.ObjectInfo, opts Options) *Object {
	opts = opts.withDefaults()
	return &Object{b: b, info: info, opts: opts, rt: retrier{r: opts.Retry, log: opts.Logger}}
}

// Info returns the pinned attributes given to Open.
func (o *Object) Info() backends.ObjectInfo { return o.info }

// Size is the pinned object's size in bytes.
func (o *Object) Size() int64 { return o.info.Size }

// Parts is the number of Download parts: ceil(Size/PartSize), 0 for an
// empty object.
func (o *Object) Parts() int {
	return int((o.info.Size + o.opts.PartSize - 1) / o.opts.PartSize)
}

// Part returns the byte range [off, off+n) of part i of Download.
func (o *Object) Part(i int) (off, n int64) {
	off = int64(i) * o.opts.PartSize
	return off, min(o.opts.PartSize, o.info.Size-off)
}

// ReadAt reads len(p) bytes at offset off of the pinned version with one
// ranged GET, retried on transient errors, each retry resuming the range
// where the broken body stopped. It has io.ReaderAt semantics: it returns
// n < len(p) only with an error, which is io.EOF when the read reaches the
// end of the object (n == 0 and io.EOF for off >= Size, without a request;
// an empty p reads nothing and returns 0, nil before the end);
// a read that fills p exactly up to the end returns nil. A replaced object
// gives an error matching backends.ErrPrecondition. ctx bounds the whole
// call, waits between retries included.
func (o *Object) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w %d reading %q", ErrNegativeOffset, off, o.info.Key)
	}
	if off >= o.info.Size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := min(int64(len(p)), o.info.Size-off)
	var done int64
	err := o.fetch(ctx, off, n, func(body io.Reader, at, want int64) (int64, error) {
		start := at - off
		k, err := io.ReadFull(body, p[start:start+want])
		done += int64(k)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = nil // a short body: fetch reports and retries it
		}
		return int64(k), err
	})
	if err != nil {
		return int(done), err
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// fillFunc reads up to want bytes of body and stores them at object offset
// at, returning how many it stored. It returns a nil error when body ends
// early (fetch notices the short count); errors of its destination must
// be wrapped in finalError.
type fillFunc func(body io.Reader, at, want int64) (int64, error)

// fetch delivers the pinned object's bytes [off, off+n) to fill, one ranged
// GET per try. A try that fails, or whose body ends early, is followed by a
// GET of the remaining bytes only, as the retry policy allows.
func (o *Object) fetch(ctx context.Context, off, n int64, fill fillFunc) error {
	var done int64
	what := func() []slog.Attr {
		return []slog.Attr{
			slog.String("store", o.b.String()), slog.String("key", o.info.Key),
			slog.Int64("offset", off+done), slog.Int64("length", n-done),
		}
	}
	return o.rt.do(ctx, what, func() (bool, error) {
		at, want := off+done, n-done
		body, info, err := o.b.GetRange(ctx, o.info.Key, at, want, backends.ReadOptions{IfVersion: o.info.Version})
		if err != nil {
			return false, err
		}
		defer body.Close()
		if info.Size != o.info.Size {
			return false, backends.Errorf("get", o.b.String(), o.info.Key, backends.ErrPrecondition,
				fmt.Errorf("object is now %d bytes, pinned at %d", info.Size, o.info.Size))
		}
		got, err := fill(body, at, want)
		done += got
		if err == nil && got < want {
			err = backends.Errorf("get", o.b.String(), o.info.Key, nil,
				fmt.Errorf("body ended after %d of %d bytes at offset %d: %w", got, want, at, io.ErrUnexpectedEOF))
		}
		return got > 0, err
	})
}
