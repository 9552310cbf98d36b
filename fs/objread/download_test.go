package objread

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/ferryio/ferry/backends"
)

const kib = 1 << 10

// destFile creates an empty file to download into.
func destFile(t testing.TB) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "dest"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func contents(t testing.TB, f *os.File) []byte {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDownloadMultipart(t *testing.T) {
	b := newStore(t)
	data := randomBytes(1<<20+123, 10) // 16 full parts and one of 123 bytes
	info := put(t, b, "big", data)
	f := &faulty{Backend: b}
	o := Open(f, info, Options{PartSize: 64 * kib, Concurrency: 4, BufferSize: 16 * kib, Retry: fastRetry()})
	if o.Parts() != 17 {
		t.Fatalf("Parts() = %d", o.Parts())
	}
	dst := destFile(t)
	var mu sync.Mutex
	parts := map[int]int64{}
	var progress atomic.Int64
	res, err := o.Download(context.Background(), dst, DownloadOptions{
		Verify: true,
		OnPart: func(i int, n int64) error {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := parts[i]; dup {
				return fmt.Errorf("part %d reported twice", i)
			}
			parts[i] = n
			return nil
		},
		OnBytes: func(n int64) { progress.Add(n) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(contents(t, dst), data) {
		t.Fatal("downloaded bytes differ")
	}
	if res.Fetched != int64(len(data)) || res.Parts != 17 || res.Skipped != 0 || progress.Load() != int64(len(data)) {
		t.Errorf("result %+v, progress %d; want all %d bytes in 17 parts", res, progress.Load(), len(data))
	}
	if !slices.Equal(res.Checked, []string{CRC32C}) || res.Unverified != "" {
		t.Errorf("Checked %q Unverified %q; want crc32c checked", res.Checked, res.Unverified)
	}
	for i := range 17 {
		if _, n := o.Part(i); parts[i] != n {
			t.Errorf("OnPart(%d) got %d bytes, want %d", i, parts[i], n)
		}
	}
	if f.calls.Load() != 17 || f.maxInFlight.Load() > 4 {
		t.Errorf("%d GETs, %d at once; want 17, at most 4", f.calls.Load(), f.maxInFlight.Load())
	}
}

// CRC32C known: checked, in flight (nothing read back), also into a
// destination that cannot be read. Only MD5 known: MD5 is checked, by
// reading back, or in flight when one GET fetches the whole object.
// Nothing known: success, said unverified.
func TestDownloadVerificationKinds(t *testing.T) {
	b := newStore(t)
	data := randomBytes(200*kib, 11)
	info := put(t, b, "obj", data)
	writeOnlyDest := func(f *os.File) io.WriterAt { return writeOnly{f} }
	for _, tc := range []struct {
		name       string
		sums       backends.Checksums
		dest       func(*os.File) io.WriterAt
		partSize   int64 // 64 KiB when 0
		checked    []string
		readBack   int64
		unverified string
	}{
		{"crc32c and md5", sumsOf(data), nil, 0, []string{CRC32C}, 0, ""},
		{"crc32", backends.Checksums{CRC32: crc32IEEE(data), MD5: sumsOf(data).MD5}, nil, 0, []string{CRC32}, 0, ""},
		{"crc64nvme", backends.Checksums{CRC64NVME: crc64NVME(data), MD5: sumsOf(data).MD5}, nil, 0, []string{CRC64NVME}, 0, ""},
		{"write-only crc64nvme", backends.Checksums{CRC64NVME: crc64NVME(data)}, writeOnlyDest, 0, []string{CRC64NVME}, 0, ""},
		{"md5", backends.Checksums{MD5: sumsOf(data).MD5}, nil, 0, []string{MD5}, int64(len(data)), ""},
		{"none", backends.Checksums{}, nil, 0, nil, 0, UnverifiedNoChecksum},
		{"md5 whole", backends.Checksums{MD5: sumsOf(data).MD5}, nil, 256 * kib, []string{MD5}, 0, ""},
		{"write-only md5 whole", backends.Checksums{MD5: sumsOf(data).MD5}, writeOnlyDest, 256 * kib, []string{MD5}, 0, ""},
		{"write-only crc32c", sumsOf(data), writeOnlyDest, 0, []string{CRC32C}, 0, ""},
		{"write-only md5", backends.Checksums{MD5: sumsOf(data).MD5}, writeOnlyDest, 0, nil, 0, UnverifiedNotReadable},
	} {
		info := info
		info.Checksums = tc.sums
		dst := destFile(t)
		var w io.WriterAt = dst
		if tc.dest != nil {
			w = tc.dest(dst)
		}
		ps := cmp.Or(tc.partSize, 64*kib)
		res, err := Open(b, info, Options{PartSize: ps}).Download(context.Background(), w, DownloadOptions{Verify: true})
		if err != nil || !slices.Equal(res.Checked, tc.checked) || res.Unverified != tc.unverified || res.ReadBack != tc.readBack {
			t.Errorf("%s: %+v, %v; want checked %q unverified %q, %d bytes read back", tc.name, res, err, tc.checked, tc.unverified, tc.readBack)
		}
		if !bytes.Equal(contents(t, dst), data) {
			t.Errorf("%s: bytes differ", tc.name)
		}
	}
	res, err := Open(b, info, Options{}).Download(context.Background(), destFile(t), DownloadOptions{})
	if err != nil || res.Checked != nil || res.Unverified != UnverifiedNotRequested {
		t.Errorf("without Verify: %+v, %v", res, err)
	}
}

type writeOnly struct{ w io.WriterAt }

func (w writeOnly) WriteAt(p []byte, off int64) (int, error) { return w.w.WriteAt(p, off) }

// Parts journaled by an earlier run are not fetched again, and their bytes
// (read back from the file: with a CRC, those bytes only) take part in the
// verification, which catches a kept part that is corrupt.
func TestDownloadResume(t *testing.T) {
	b := newStore(t)
	data := randomBytes(10*64*kib+5, 12)
	stored := put(t, b, "obj", data)
	done := map[int]bool{0: true, 3: true, 4: true, 10: true}
	const keptBytes = 3*64*kib + 5

	for _, tc := range []struct {
		sums     backends.Checksums
		corrupt  bool
		readBack int64
	}{
		{sumsOf(data), false, keptBytes},
		{sumsOf(data), true, 0},
		{backends.Checksums{CRC32: crc32IEEE(data)}, false, keptBytes},
		{backends.Checksums{CRC32: crc32IEEE(data)}, true, 0},
		{backends.Checksums{CRC64NVME: crc64NVME(data)}, false, keptBytes},
		{backends.Checksums{CRC64NVME: crc64NVME(data)}, true, 0},
		{backends.Checksums{MD5: sumsOf(data).MD5}, false, int64(len(data))},
		{backends.Checksums{MD5: sumsOf(data).MD5}, true, 0},
	} {
		corrupt := tc.corrupt
		info := stored
		info.Checksums = tc.sums
		f := &faulty{Backend: b}
		o := Open(f, info, Options{PartSize: 64 * kib, Concurrency: 3, Retry: fastRetry()})
		dst := destFile(t)
		for i := range done {
			off, n := o.Part(i)
			part := slices.Clone(data[off : off+n])
			if corrupt && i == 3 {
				part[7] ^= 1
			}
			if _, err := dst.WriteAt(part, off); err != nil {
				t.Fatal(err)
			}
		}
		var fetchedParts []int
		var mu sync.Mutex
		res, err := o.Download(context.Background(), dst, DownloadOptions{
			Verify: true,
			Done:   func(i int) bool { return done[i] },
			OnPart: func(i int, _ int64) error {
				mu.Lock()
				fetchedParts = append(fetchedParts, i)
				mu.Unlock()
				return nil
			},
		})
		if corrupt {
			if !errors.Is(err, backends.ErrChecksum) {
				t.Errorf("%+v: corrupt journaled part: err %v; want ErrChecksum", tc.sums, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(fetchedParts)
		if !slices.Equal(fetchedParts, []int{1, 2, 5, 6, 7, 8, 9}) || f.calls.Load() != 7 {
			t.Errorf("fetched parts %v in %d GETs; want the 7 not done", fetchedParts, f.calls.Load())
		}
		if res.Parts != 7 || res.Skipped != 4 || res.Fetched != int64(len(data))-keptBytes || res.ReadBack != tc.readBack || len(res.Checked) != 1 {
			t.Errorf("%+v: result %+v; want %d bytes read back", tc.sums, res, tc.readBack)
		}
		if !bytes.Equal(contents(t, dst), data) {
			t.Error("bytes differ after resume")
		}
	}
}

// From resumes a contiguous prefix, also in the middle of a part.
func TestDownloadFrom(t *testing.T) {
	b := newStore(t)
	data := randomBytes(300*kib, 13)
	info := put(t, b, "obj", data)
	for _, from := range []int64{0, 64 * kib, 100*kib + 7, 300 * kib} {
		f := &faulty{Backend: b}
		o := Open(f, info, Options{PartSize: 64 * kib, Concurrency: 2})
		dst := destFile(t)
		if _, err := dst.WriteAt(data[:from], 0); err != nil {
			t.Fatal(err)
		}
		res, err := o.Download(context.Background(), dst, DownloadOptions{From: from, Verify: true})
		if err != nil {
			t.Fatalf("from %d: %v", from, err)
		}
		if !bytes.Equal(contents(t, dst), data) || res.Fetched != int64(len(data))-from || len(res.Checked) == 0 || res.ReadBack != from {
			t.Errorf("from %d: result %+v, identical %v", from, res, bytes.Equal(contents(t, dst), data))
		}
		if rs := f.rangesSeen(); from < int64(len(data)) && !slices.ContainsFunc(rs, func(r [2]int64) bool { return r[0] == from }) {
			t.Errorf("from %d: ranges %v do not start at it", from, rs)
		}
	}
	_, err := Open(b, info, Options{}).Download(context.Background(), destFile(t), DownloadOptions{From: int64(len(data)) + 1})
	if !errors.Is(err, backends.ErrInvalidRange) {
		t.Errorf("From past the end: %v", err)
	}
}

// An object replaced during the download fails it with ErrPrecondition; the
// destination never receives bytes of the new version.
func TestDownloadObjectReplaced(t *testing.T) {
	b := newStore(t)
	old := randomBytes(8*64*kib, 14)
	info := put(t, b, "obj", old)
	f := &faulty{Backend: b}
	o := Open(f, info, Options{PartSize: 64 * kib, Concurrency: 1, Retry: fastRetry()})
	dst := destFile(t)
	_, err := o.Download(context.Background(), dst, DownloadOptions{
		OnPart: func(i int, _ int64) error {
			if i != 1 {
				return nil
			}
			repl := randomBytes(len(old), 15) // same size, new content
			_, err := b.Put(context.Background(), "obj", bytes.NewReader(repl), int64(len(repl)), backends.PutOptions{})
			return err
		},
	})
	if !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("err %v; want ErrPrecondition", err)
	}
	if f.calls.Load() != 3 {
		t.Errorf("%d GETs; want 3 (two parts, one refused, no retry)", f.calls.Load())
	}
	got := contents(t, dst)
	if !bytes.Equal(got, old[:len(got)]) || len(got) != 2*64*kib {
		t.Errorf("destination holds %d bytes, equal to the old version: %v", len(got), bytes.Equal(got, old[:len(got)]))
	}
}

// Transient failures (a refused request, a body cut short) are retried and
// the result is byte-identical.
func TestDownloadRetriesTransientErrors(t *testing.T) {
	b := newStore(t)
	data := randomBytes(6*64*kib, 16)
	info := put(t, b, "obj", data)
	f := &faulty{
		Backend: b,
		failOn:  map[int64]error{2: errReset},
		cutOn:   map[int64]int64{4: 1000, 5: 0},
	}
	dst := destFile(t)
	var progress atomic.Int64
	res, err := Open(f, info, Options{PartSize: 64 * kib, Concurrency: 2, Retry: fastRetry()}).
		Download(context.Background(), dst, DownloadOptions{Verify: true, OnBytes: func(n int64) { progress.Add(n) }})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(contents(t, dst), data) {
		t.Fatal("bytes differ")
	}
	if f.calls.Load() != 6+3 || res.Fetched != int64(len(data)) || progress.Load() != int64(len(data)) {
		t.Errorf("%d GETs, result %+v, progress %d; want 9 GETs and each byte counted once", f.calls.Load(), res, progress.Load())
	}
}

func TestDownloadDoesNotRetryFinalErrors(t *testing.T) {
	b := newStore(t)
	info := put(t, b, "obj", randomBytes(6*64*kib, 17))
	f := &faulty{Backend: b, failOn: map[int64]error{2: backends.Errorf("get", "test", "obj", backends.ErrPermission, nil)}}
	_, err := Open(f, info, Options{PartSize: 64 * kib, Concurrency: 1, Retry: fastRetry()}).
		Download(context.Background(), destFile(t), DownloadOptions{})
	if !errors.Is(err, backends.ErrPermission) || f.calls.Load() != 2 {
		t.Errorf("err %v after %d GETs; want ErrPermission after 2", err, f.calls.Load())
	}
}

// corrupting flips one byte of what it writes at offset at.
type corrupting struct {
	*os.File
	at int64
}

func (c corrupting) WriteAt(p []byte, off int64) (int, error) {
	if off <= c.at && c.at < off+int64(len(p)) {
		p = slices.Clone(p)
		p[c.at-off] ^= 0x40
	}
	return c.File.WriteAt(p, off)
}

func TestDownloadChecksumMismatch(t *testing.T) {
	b := newStore(t)
	data := randomBytes(5*64*kib+3, 18)
	info := put(t, b, "obj", data)
	md5Only := info
	md5Only.Checksums = backends.Checksums{MD5: sumsOf(data).MD5}
	crc32Only := info
	crc32Only.Checksums = backends.Checksums{CRC32: crc32IEEE(data)}
	crc64Only := info
	crc64Only.Checksums = backends.Checksums{CRC64NVME: crc64NVME(data)}

	// Bytes corrupted on their way from the store: the in-flight CRCs
	// (CRC32C, CRC32, CRC64NVME) and the read-back MD5 all catch it.
	for _, in := range []backends.ObjectInfo{info, crc32Only, crc64Only, md5Only} {
		f := &faulty{Backend: b, flipAt: 3*64*kib + 99}
		_, err := Open(f, in, Options{PartSize: 64 * kib, Concurrency: 3}).
			Download(context.Background(), destFile(t), DownloadOptions{Verify: true})
		if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), `"obj"`) {
			t.Errorf("%+v, corrupted in transit: %v; want ErrChecksum naming the key", in.Checksums, err)
		}
	}

	// The same, fetched whole by one GET: the MD5 is hashed in flight.
	f := &faulty{Backend: b, flipAt: 3*64*kib + 99}
	_, err := Open(f, md5Only, Options{PartSize: 8 * 64 * kib}).
		Download(context.Background(), destFile(t), DownloadOptions{Verify: true})
	if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), `"obj"`) {
		t.Errorf("md5, fetched whole, corrupted in transit: %v; want ErrChecksum naming the key", err)
	}

	// Bytes corrupted on their way to the file: MD5, read back, sees the
	// bytes as written.
	_, err = Open(b, md5Only, Options{PartSize: 64 * kib}).
		Download(context.Background(), corrupting{destFile(t), 3*64*kib + 99}, DownloadOptions{Verify: true})
	if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), `"obj"`) {
		t.Errorf("corrupted write: %v; want ErrChecksum naming the key", err)
	}

	// The store's checksum disagrees with the bytes.
	bad := info
	bad.Checksums = backends.Checksums{MD5: sumsOf(data[1:]).MD5}
	_, err = Open(b, bad, Options{PartSize: 64 * kib}).Download(context.Background(), destFile(t), DownloadOptions{Verify: true})
	want := fmt.Sprintf("expected %x, got %x", bad.Checksums.MD5, sumsOf(data).MD5)
	if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), want) {
		t.Errorf("wrong md5: %v; want ErrChecksum with %q", err, want)
	}
	bad.Checksums = backends.Checksums{CRC32C: sumsOf(data[1:]).CRC32C}
	_, err = Open(b, bad, Options{PartSize: 64 * kib}).Download(context.Background(), destFile(t), DownloadOptions{Verify: true})
	want = fmt.Sprintf("crc32c expected %x, got %x", bad.Checksums.CRC32C, sumsOf(data).CRC32C)
	if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), want) {
		t.Errorf("wrong crc32c: %v; want ErrChecksum with %q", err, want)
	}
	bad.Checksums = backends.Checksums{CRC64NVME: crc64NVME(data[1:])}
	_, err = Open(b, bad, Options{PartSize: 64 * kib}).Download(context.Background(), destFile(t), DownloadOptions{Verify: true})
	want = fmt.Sprintf("crc64nvme expected %x, got %x", bad.Checksums.CRC64NVME, crc64NVME(data))
	if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), want) {
		t.Errorf("wrong crc64nvme: %v; want ErrChecksum with %q", err, want)
	}
}

// The workers' WriteAt calls never overlap (see Download), and every byte
// still arrives.
func TestDownloadSerialisesWrites(t *testing.T) {
	b := newStore(t)
	data := randomBytes(16*64*kib, 22)
	info := put(t, b, "obj", data)
	dst := &overlapDetector{File: destFile(t)}
	_, err := Open(b, info, Options{PartSize: 64 * kib, Concurrency: 8, BufferSize: 4 * kib}).
		Download(context.Background(), dst, DownloadOptions{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := dst.overlaps.Load(); n != 0 {
		t.Errorf("%d WriteAt calls overlapped another", n)
	}
	if dst.calls.Load() < 16*16 || !bytes.Equal(contents(t, dst.File), data) {
		t.Errorf("%d WriteAt calls; bytes equal %v", dst.calls.Load(), bytes.Equal(contents(t, dst.File), data))
	}
}

// overlapDetector counts WriteAt calls made while another one runs. Each
// call yields the processor a few times, so that overlapping calls, if the
// caller makes them, do overlap.
type overlapDetector struct {
	*os.File
	active, calls, overlaps atomic.Int64
}

func (d *overlapDetector) WriteAt(p []byte, off int64) (int, error) {
	d.calls.Add(1)
	if d.active.Add(1) > 1 {
		d.overlaps.Add(1)
	}
	defer d.active.Add(-1)
	for range 3 {
		runtime.Gosched()
	}
	return d.File.WriteAt(p, off)
}

func TestDownloadCancelled(t *testing.T) {
	b := newStore(t)
	info := put(t, b, "obj", randomBytes(8*64*kib, 19))

	ctx, cancel := context.WithCancel(context.Background())
	f := &faulty{Backend: b}
	res, err := Open(f, info, Options{PartSize: 64 * kib, Concurrency: 1}).
		Download(ctx, destFile(t), DownloadOptions{Verify: true, OnPart: func(int, int64) error { cancel(); return nil }})
	if !errors.Is(err, context.Canceled) || f.calls.Load() != 1 || res.Parts != 1 {
		t.Errorf("cancelled after part 0: %v after %d GETs, %+v", err, f.calls.Load(), res)
	}

	// Cancelled while waiting to retry (the retry log line comes just
	// before an hour-long wait).
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	f = &faulty{Backend: b, always: errReset}
	log := funcLogger(func() { cancel() })
	_, err = Open(f, info, Options{PartSize: 64 * kib, Concurrency: 4, Logger: log, Retry: Retry{InitialInterval: time.Hour, MaxInterval: time.Hour}}).
		Download(ctx, destFile(t), DownloadOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled in backoff: %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	f = &faulty{Backend: b}
	if _, err := Open(f, info, Options{}).Download(ctx, destFile(t), DownloadOptions{}); !errors.Is(err, context.Canceled) || f.calls.Load() != 0 {
		t.Errorf("cancelled before: %v after %d GETs", err, f.calls.Load())
	}
}

// Memory stays bounded by the workers' buffers, not by part or object size:
// 64 MiB in 16 MiB parts allocates well under one part.
func TestDownloadMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB object")
	}
	b := newStore(t)
	info := put(t, b, "big", randomBytes(64<<20, 20))
	dst := destFile(t)
	o := Open(b, info, Options{PartSize: 16 << 20, Concurrency: 8})

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := o.Download(context.Background(), dst, DownloadOptions{Verify: true})
	runtime.ReadMemStats(&after)
	if err != nil || len(res.Checked) == 0 {
		t.Fatal(res, err)
	}
	// The design's bound: 4 parts -> 4 workers x 256 KiB (CRC32C is
	// hashed in flight: no reader); allow as much again for everything
	// else.
	allocated := after.TotalAlloc - before.TotalAlloc
	const bound = 2 * 4 * DefaultBufferSize
	t.Logf("allocated %.1f MiB downloading 64 MiB", float64(allocated)/(1<<20))
	if allocated > bound {
		t.Errorf("allocated %d bytes; want at most %d", allocated, bound)
	}
	if st, err := dst.Stat(); err != nil || st.Size() != 64<<20 {
		t.Errorf("destination %v, %v", st, err)
	}
}

func BenchmarkDownload(b *testing.B) {
	store := newStore(b)
	const size = 64 << 20
	info := put(b, store, "bench", randomBytes(size, 21))
	for _, conc := range []int{1, 4, 8} {
		for _, verify := range []bool{false, true} {
			b.Run(fmt.Sprintf("conc=%d/verify=%v", conc, verify), func(b *testing.B) {
				o := Open(store, info, Options{PartSize: 8 << 20, Concurrency: conc})
				dst := destFile(b)
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := o.Download(context.Background(), dst, DownloadOptions{Verify: verify}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// countingSlots is a semaphore of Slots that counts what is taken.
type countingSlots struct {
	sem                      *semaphore.Weighted
	acquired, held, released atomic.Int64
}

func (s *countingSlots) Acquire(ctx context.Context, n int64) error {
	if err := s.sem.Acquire(ctx, n); err != nil {
		return err
	}
	s.acquired.Add(n)
	s.held.Add(n)
	return nil
}

func (s *countingSlots) Release(n int64) {
	s.held.Add(-n)
	s.released.Add(n)
	s.sem.Release(n)
}

// Two Downloads sharing 3 slots, the second started when the first has
// dispatched its parts (as load does): never more than 3 GETs in flight
// between them, although each may run 8; Dispatched comes once every part
// of its Download has taken a slot, and every slot is given back.
func TestDownloadSharedSlots(t *testing.T) {
	b := newStore(t)
	f := &faulty{Backend: b}
	slots := &countingSlots{sem: semaphore.NewWeighted(3)}
	data := map[string][]byte{"a": randomBytes(8*64*kib, 50), "b": randomBytes(8*64*kib-1, 51)}
	dsts := map[string]*os.File{"a": destFile(t), "b": destFile(t)}
	var dispatched atomic.Int64
	var acquiredAtDispatch int64
	download := func(key string, then func()) error {
		o := Open(f, put(t, b, key, data[key]), Options{PartSize: 64 * kib, Concurrency: 8, BufferSize: 16 * kib})
		_, err := o.Download(t.Context(), dsts[key], DownloadOptions{Verify: true, Slots: slots, Dispatched: then})
		return err
	}
	var g errgroup.Group
	g.Go(func() error {
		return download("a", func() {
			dispatched.Add(1)
			acquiredAtDispatch = slots.acquired.Load()
			g.Go(func() error { return download("b", func() { dispatched.Add(1) }) })
		})
	})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for key, want := range data {
		if !bytes.Equal(contents(t, dsts[key]), want) {
			t.Errorf("%s: downloaded bytes differ", key)
		}
	}
	if m := f.maxInFlight.Load(); m > 3 {
		t.Errorf("%d GETs in flight at once; want at most the 3 slots", m)
	}
	if acquiredAtDispatch != 8 {
		t.Errorf("first Download dispatched after %d slots were taken, want its 8 parts'", acquiredAtDispatch)
	}
	if dispatched.Load() != 2 || slots.acquired.Load() != 16 || slots.released.Load() != 16 || slots.held.Load() != 0 {
		t.Errorf("Dispatched called %d times (want 2), slots acquired %d released %d held %d (want 16, 16, 0)",
			dispatched.Load(), slots.acquired.Load(), slots.released.Load(), slots.held.Load())
	}
}

// A Download that ends before dispatching anything (cancelled, or a part
// failing while others wait for a slot) still calls Dispatched, once, and
// gives back every slot it took.
func TestDownloadDispatchedOnFailure(t *testing.T) {
	b := newStore(t)
	info := put(t, b, "obj", randomBytes(8*64*kib, 52))
	for _, tc := range []struct {
		name string
		ctx  func() context.Context
		f    *faulty
	}{
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx
		}, &faulty{Backend: b}},
		{"final error", t.Context, &faulty{Backend: b, always: backends.ErrPermission}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slots := &countingSlots{sem: semaphore.NewWeighted(2)}
			var calls atomic.Int64
			o := Open(tc.f, info, Options{PartSize: 64 * kib, Concurrency: 4, Retry: fastRetry()})
			_, err := o.Download(tc.ctx(), destFile(t), DownloadOptions{Slots: slots, Dispatched: func() { calls.Add(1) }})
			if err == nil {
				t.Fatal("Download succeeded")
			}
			if calls.Load() != 1 || slots.held.Load() != 0 {
				t.Errorf("Dispatched called %d times, %d slots still held; want 1, 0", calls.Load(), slots.held.Load())
			}
		})
	}
}
