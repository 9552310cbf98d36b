package objread

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
)

func TestReadAtRangesAndEOF(t *testing.T) {
	ctx := context.Background()
	b := newStore(t)
	data := randomBytes(1000, 1)
	info := put(t, b, "dir/obj", data)
	f := &faulty{Backend: b}
	o := Open(f, info, Options{Retry: fastRetry()})
	for _, tc := range []struct {
		off, len int64
		n        int
		err      error
		requests int64
	}{
		{0, 10, 10, nil, 1},
		{500, 100, 100, nil, 1},
		{990, 10, 10, nil, 1}, // exactly up to the end: nil
		{0, 1000, 1000, nil, 1},
		{995, 10, 5, io.EOF, 1},
		{0, 2000, 1000, io.EOF, 1},
		{1000, 1, 0, io.EOF, 0},
		{5000, 1, 0, io.EOF, 0},
		{0, 0, 0, nil, 0},
		{-1, 1, 0, ErrNegativeOffset, 0},
	} {
		before := f.calls.Load()
		p := make([]byte, tc.len)
		n, err := o.ReadAt(ctx, p, tc.off)
		if n != tc.n || !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("ReadAt(len %d, off %d) = %d, %v; want %d, %v", tc.len, tc.off, n, err, tc.n, tc.err)
			continue
		}
		if n > 0 && !bytes.Equal(p[:n], data[tc.off:tc.off+int64(n)]) {
			t.Errorf("ReadAt(len %d, off %d): wrong bytes", tc.len, tc.off)
		}
		if got := f.calls.Load() - before; got != tc.requests {
			t.Errorf("ReadAt(len %d, off %d) made %d requests, want %d", tc.len, tc.off, got, tc.requests)
		}
	}

	empty := put(t, b, "empty", nil)
	if n, err := Open(b, empty, Options{}).ReadAt(ctx, make([]byte, 4), 0); n != 0 || err != io.EOF {
		t.Errorf("ReadAt of an empty object = %d, %v; want 0, EOF", n, err)
	}
}

// A body cut short, and a failed request, are retried; the retry asks only
// for the bytes still missing.
func TestReadAtResumesBrokenBody(t *testing.T) {
	b := newStore(t)
	data := randomBytes(100_000, 2)
	info := put(t, b, "obj", data)
	f := &faulty{
		Backend: b,
		cutOn:   map[int64]int64{1: 30_000, 3: 10_000},
		failOn:  map[int64]error{2: backends.Errorf("get", "test", "obj", nil, errReset)},
	}
	var retries int
	log := slog.New(funcHandler{func(r slog.Record) {
		if r.Level == slog.LevelDebug {
			retries++
		}
	}})
	o := Open(f, info, Options{Retry: fastRetry(), Logger: log})
	p := make([]byte, 90_000)
	n, err := o.ReadAt(context.Background(), p, 5_000)
	if n != len(p) || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(p, data[5_000:95_000]) {
		t.Fatal("bytes differ after retries")
	}
	want := [][2]int64{{5_000, 90_000}, {35_000, 60_000}, {35_000, 60_000}, {45_000, 50_000}}
	if got := f.rangesSeen(); !slices.Equal(got, want) {
		t.Errorf("ranges requested %v; want %v", got, want)
	}
	if retries != 3 {
		t.Errorf("logged %d retries, want 3", retries)
	}
}

// A transient error is tried MaxAttempts times, then returned.
func TestReadAtGivesUp(t *testing.T) {
	b := newStore(t)
	info := put(t, b, "obj", randomBytes(10, 3))
	f := &faulty{Backend: b, always: errReset}
	retry := fastRetry()
	retry.MaxAttempts = 3
	_, err := Open(f, info, Options{Retry: retry}).ReadAt(context.Background(), make([]byte, 10), 0)
	if !errors.Is(err, errReset) || f.calls.Load() != 3 {
		t.Errorf("err %v after %d calls; want errReset after 3", err, f.calls.Load())
	}
}

// Final errors are returned after one request.
func TestReadAtDoesNotRetryFinalErrors(t *testing.T) {
	ctx := context.Background()
	b := newStore(t)
	data := randomBytes(4096, 4)

	// The object is replaced by one of the same size: the pinned version
	// is gone.
	info := put(t, b, "replaced", data)
	put(t, b, "replaced", randomBytes(4096, 5))
	f := &faulty{Backend: b}
	_, err := Open(f, info, Options{Retry: fastRetry()}).ReadAt(ctx, make([]byte, 100), 0)
	if !errors.Is(err, backends.ErrPrecondition) || f.calls.Load() != 1 {
		t.Errorf("replaced: err %v after %d calls; want ErrPrecondition after 1", err, f.calls.Load())
	}

	// Deleted: ErrNotExist or ErrPrecondition as the driver reports it.
	info = put(t, b, "deleted", data)
	if err := b.Delete(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	f = &faulty{Backend: b}
	_, err = Open(f, info, Options{Retry: fastRetry()}).ReadAt(ctx, make([]byte, 100), 0)
	if !errors.Is(err, backends.ErrNotExist) && !errors.Is(err, backends.ErrPrecondition) || f.calls.Load() != 1 {
		t.Errorf("deleted: err %v after %d calls; want ErrNotExist after 1", err, f.calls.Load())
	}

	info = put(t, b, "denied", data)
	f = &faulty{Backend: b, always: backends.Errorf("get", "test", "denied", backends.ErrPermission, nil)}
	_, err = Open(f, info, Options{Retry: fastRetry()}).ReadAt(ctx, make([]byte, 100), 0)
	if !errors.Is(err, backends.ErrPermission) || f.calls.Load() != 1 {
		t.Errorf("denied: err %v after %d calls; want ErrPermission after 1", err, f.calls.Load())
	}
}

// A cancelled context ends the call, also while waiting between retries.
func TestReadAtCancelled(t *testing.T) {
	b := newStore(t)
	info := put(t, b, "obj", randomBytes(100, 6))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &faulty{Backend: b}
	if _, err := Open(f, info, Options{}).ReadAt(ctx, make([]byte, 10), 0); !errors.Is(err, context.Canceled) || f.calls.Load() != 0 {
		t.Errorf("cancelled before: err %v after %d calls", err, f.calls.Load())
	}

	// The retry log line comes just before the wait of one hour: cancel
	// there.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(funcHandler{func(slog.Record) { cancel() }})
	f = &faulty{Backend: b, always: errReset}
	o := Open(f, info, Options{Logger: log, Retry: Retry{MaxAttempts: 5, InitialInterval: time.Hour, MaxInterval: time.Hour}})
	start := time.Now()
	_, err := o.ReadAt(ctx, make([]byte, 10), 0)
	if !errors.Is(err, context.Canceled) || f.calls.Load() != 1 {
		t.Errorf("cancelled in backoff: err %v after %d calls; want context.Canceled after 1", err, f.calls.Load())
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("returned after %v", d)
	}
}

func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errReset, true},
		{io.ErrUnexpectedEOF, true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{backends.Errorf("get", "s", "k", nil, errReset), true},
		{backends.Errorf("get", "s", "k", backends.ErrChecksum, nil), true},
		{backends.Errorf("get", "s", "k", backends.ErrNotExist, nil), false},
		{backends.Errorf("get", "s", "k", backends.ErrPrecondition, nil), false},
		{backends.Errorf("get", "s", "k", backends.ErrPermission, nil), false},
		{backends.Errorf("get", "s", "k", backends.ErrInvalidRange, nil), false},
		{backends.Errorf("get", "s", "k", backends.ErrInvalidKey, nil), false},
		{backends.Errorf("get", "s", "k", backends.ErrNoBucket, nil), false},
		{backends.Errorf("get", "s", "k", nil, context.Canceled), false},
	} {
		if got := IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}
