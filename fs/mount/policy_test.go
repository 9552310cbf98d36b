package mount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/cache/block"
	"github.com/ferryio/ferry/fs/namespace"
)

const mib = 1 << 20

func TestWindowGrowsOnSequentialReads(t *testing.T) {
	w := newWindow(mib, 8*mib)
	var sizes []int64
	for off := int64(0); off < 20*mib; off += 128 << 10 {
		from, to, _ := w.observe(off, off+128<<10)
		if from != off+128<<10 {
			t.Fatalf("read at %d: window starts at %d, want the read's end", off, from)
		}
		if n := len(sizes); n == 0 || sizes[n-1] != to-from {
			sizes = append(sizes, to-from)
		}
	}
	if want := []int64{2 * mib, 4 * mib, 8 * mib}; !slices.Equal(sizes, want) {
		t.Fatalf("window sizes %v, want %v (doubling per block, capped)", sizes, want)
	}
}

func TestWindowRandomReadsFetchNothingAhead(t *testing.T) {
	w := newWindow(mib, 64*mib)
	for i, off := range []int64{100 * mib, 7 * mib, 250 * mib, 3 * mib, 180 * mib, 60 * mib} {
		if from, to, _ := w.observe(off, off+4096); from != to {
			t.Fatalf("random read %d at %d: window [%d, %d), want none", i, off, from, to)
		}
	}
}

func TestWindowStartsMidFileOnSecondReadAndToleratesReordering(t *testing.T) {
	w := newWindow(mib, 64*mib)
	if from, to, _ := w.observe(50*mib, 50*mib+4096); from != to {
		t.Fatalf("first read mid-file started a window [%d, %d)", from, to)
	}
	if from, to, _ := w.observe(50*mib+4096, 50*mib+8192); to-from != 2*mib {
		t.Fatalf("second sequential read: window %d, want 2 MiB", to-from)
	}
	// The kernel's concurrent requests arrive out of order: a read just
	// before the furthest end keeps the run.
	if from, to, _ := w.observe(50*mib, 50*mib+4096); from == to {
		t.Fatal("a reordered read within one block ended the run")
	}
	if from, to, _ := w.observe(10*mib, 10*mib+4096); from != to {
		t.Fatal("a jump back did not end the run")
	}
}

// TestWindowToleratesLateRequests: once the window is open, a read
// arriving behind the furthest end by less than the window (the kernel's
// concurrent readahead requests, 8 MiB late) keeps the run and its
// window; a read further back ends it.
func TestWindowToleratesLateRequests(t *testing.T) {
	const bs = 4 * mib
	w := newWindow(bs, 64*mib)
	for off := int64(0); off < 40*mib; off += mib {
		w.observe(off, off+mib)
	}
	from, to, _ := w.observe(32*mib, 33*mib)
	if from != 40*mib || to-from != 64*mib {
		t.Fatalf("a read 8 MiB late: window [%d, %d), want 64 MiB from the furthest end", from, to)
	}
	if from, to, _ := w.observe(40*mib, 41*mib); from != 41*mib || to-from != 64*mib {
		t.Fatalf("the next read: window [%d, %d), want the run going on", from, to)
	}
	for off := int64(41 * mib); off < 100*mib; off += mib {
		w.observe(off, off+mib)
	}
	if from, to, _ := w.observe(30*mib, 31*mib); from != to {
		t.Fatal("a jump back 70 MiB, beyond the window, did not end the run")
	}
	// A late read does not grow a window that could grow.
	w = newWindow(bs, 64*mib)
	for off := int64(0); off < 12*mib; off += mib {
		w.observe(off, off+mib)
	}
	if from, to, grew := w.observe(3*mib, 4*mib); from != 12*mib || to-from != 32*mib || grew {
		t.Fatalf("a late read: window [%d, %d) grew %v, want 32 MiB from 12 MiB, unchanged", from, to, grew)
	}
}

func TestWindowDisabled(t *testing.T) {
	w := newWindow(mib, 0)
	for off := int64(0); off < 4*mib; off += mib {
		if from, to, _ := w.observe(off, off+mib); from != to {
			t.Fatalf("readahead 0 fetched [%d, %d) ahead", from, to)
		}
	}
}

func entry(key string, size int64, etag string) backends.Entry {
	return backends.Entry{ObjectInfo: backends.ObjectInfo{Key: key, Size: size, Version: backends.Version{ETag: etag}}}
}

func prefixEntry(key string) backends.Entry {
	return backends.Entry{ObjectInfo: backends.ObjectInfo{Key: key}, IsPrefix: true}
}

func TestBuildListing(t *testing.T) {
	in := []backends.Entry{
		entry("d/", 0, "m"), // the directory's own marker
		prefixEntry("d//"),  // empty segment
		prefixEntry("d/../"),
		entry("d/a", 3, "e1"),
		prefixEntry("d/a/"), // "a" is also a directory: the file is hidden
		entry("d/b.txt", 5, "e2"),
		entry("d/"+strings.Repeat("x", 300), 1, "e3"), // name too long
		prefixEntry("d/c/"),
		entry("d/c/", 0, "m2"), // a marker yielded as an object
	}
	seq := func(yield func(backends.Entry, error) bool) {
		for _, e := range in {
			if !yield(e, nil) {
				return
			}
		}
	}
	var hidden []string
	l, err := buildListing("d/", seq, time.Unix(1, 0), func(key string, reason error) {
		if !errors.Is(reason, namespace.ErrUnsafeKey) && !errors.Is(reason, namespace.ErrConflict) {
			t.Errorf("hidden %q for %v, want ErrUnsafeKey or ErrConflict", key, reason)
		}
		hidden = append(hidden, key)
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range l.children {
		s := c.name
		if c.dir {
			s += "/"
		}
		got = append(got, s)
	}
	if want := []string{"a/", "b.txt", "c/"}; !slices.Equal(got, want) {
		t.Errorf("children %q, want %q", got, want)
	}
	slices.Sort(hidden)
	want := []string{"d//", "d/../", "d/a", "d/" + strings.Repeat("x", 300)}
	slices.Sort(want)
	if !slices.Equal(hidden, want) {
		t.Errorf("hidden %q, want %q", hidden, want)
	}
	if c, ok := l.find("b.txt"); !ok || c.obj.size != 5 || c.obj.version.ETag != "e2" || c.obj.key != "d/b.txt" {
		t.Errorf("find(b.txt) = %+v, %v", c, ok)
	}
	if _, ok := l.find("zzz"); ok {
		t.Error("find(zzz) found something")
	}
}

func TestBuildListingReturnsListError(t *testing.T) {
	boom := errors.New("boom")
	seq := func(yield func(backends.Entry, error) bool) {
		if yield(entry("x", 1, "e"), nil) {
			yield(backends.Entry{}, boom)
		}
	}
	if _, err := buildListing("", seq, time.Now(), func(string, error) {}); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the listing's error", err)
	}
}

func TestVersionKeyIgnoresMtimePrecisionAndVersionID(t *testing.T) {
	listed := object{key: "k", size: 10, mtime: time.Unix(100, 123e6), version: backends.Version{ETag: "abc"}}
	statted := object{key: "k", size: 10, mtime: time.Unix(100, 0), version: backends.Version{ETag: "abc", ID: "v1"}}
	if !listed.same(statted) || listed.versionKey(mib) != statted.versionKey(mib) {
		t.Errorf("a listed and a stat'ed object of one version differ: %q vs %q", listed.versionKey(mib), statted.versionKey(mib))
	}
	other := listed
	other.version.ETag = "abd"
	if listed.same(other) || listed.versionKey(mib) == other.versionKey(mib) {
		t.Error("two versions share a key")
	}
	if listed.versionKey(mib) == listed.versionKey(4*mib) {
		t.Error("the block size is not part of the version key")
	}
}

func TestErrnoFor(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		ctx   context.Context
		op    string
		err   error
		want  syscall.Errno
		level string
	}{
		{context.Background(), opLookup, nil, 0, ""},
		{context.Background(), opLookup, backends.Errorf("stat", "s3://b", "k", backends.ErrNotExist, nil), syscall.ENOENT, "DEBUG"},
		{context.Background(), opRead, backends.Errorf("get", "s3://b", "k", backends.ErrPrecondition, nil), syscall.ESTALE, "WARN"},
		{context.Background(), opRead, backends.Errorf("get", "s3://b", "k", backends.ErrNotExist, nil), syscall.ESTALE, "WARN"},
		{context.Background(), opReaddir, backends.Errorf("list", "s3://b", "k", backends.ErrPermission, nil), syscall.EACCES, "WARN"},
		{cancelled, opRead, fmt.Errorf("wrapped: %w", context.Canceled), syscall.EINTR, "DEBUG"},
		{context.Background(), opRead, block.ErrClosed, syscall.EINTR, "DEBUG"},
		// A deadline of the store's own, with the request still live, is an I/O error.
		{context.Background(), opRead, context.DeadlineExceeded, syscall.EIO, "ERROR"},
		{context.Background(), opRead, errors.New("connection reset"), syscall.EIO, "ERROR"},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if got := errnoFor(tc.ctx, log, tc.op, "dir/key", tc.err); got != tc.want {
			t.Errorf("errnoFor(%s, %v) = %v, want %v", tc.op, tc.err, got, tc.want)
		}
		line := buf.String()
		if tc.err == nil {
			if line != "" {
				t.Errorf("success logged %q", line)
			}
			continue
		}
		if !strings.Contains(line, "level="+tc.level) || !strings.Contains(line, "key=dir/key") || !strings.Contains(line, tc.op+" failed") {
			t.Errorf("errnoFor(%v) logged %q, want level %s naming the key", tc.err, line, tc.level)
		}
	}
}

func TestErrnoForRedactsSignedURLs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	err := errors.New(`GET https://acct.blob.core.windows.net/c/k?sv=2020&sig=SECRET123 failed: 500; see "http://x/y?X-Amz-Signature=SECRET456"`)
	errnoFor(context.Background(), log, opRead, "k", err)
	if s := buf.String(); strings.Contains(s, "SECRET") || !strings.Contains(s, "https://acct.blob.core.windows.net/c/k?REDACTED") {
		t.Fatalf("log line %q leaks a signature or lost the URL", s)
	}
}
