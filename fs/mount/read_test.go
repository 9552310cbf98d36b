package mount

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/local"
	"github.com/ferryio/ferry/backends/metered"
	"github.com/ferryio/ferry/cache/block"
)

// These tests drive the read path (handles, readahead, the block cache)
// against a real local store, without the kernel: the e2e tests mount.

const testBlock = 64 << 10

type readEnv struct {
	fsys    *filesystem
	opts    Options // fsys's, with defaults
	store   backends.Backend
	counts  *metered.Counts
	metrics *Metrics
	reg     *prometheus.Registry // metrics' registry
}

// newReadEnv is newReadEnvCache with a memory tier of 4 MiB only.
func newReadEnv(t *testing.T, opts Options) *readEnv {
	return newReadEnvCache(t, opts, block.Options{MemoryBytes: 4 << 20})
}

// newReadEnvCache returns a filesystem on a fresh local store, reading
// through a block cache opened with cacheOpts (BlockSize testBlock).
func newReadEnvCache(t *testing.T, opts Options, cacheOpts block.Options) *readEnv {
	t.Helper()
	lb, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, counts := metered.New(lb, m)
	cacheOpts.BlockSize, cacheOpts.Metrics = testBlock, m.Block
	c, err := block.Open(cacheOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	opts.Cache, opts.BlockSize, opts.Metrics = c, testBlock, m
	opts, err = opts.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &readEnv{fsys: newFilesystem(ctx, b, opts), opts: opts, store: b, counts: counts, metrics: m, reg: reg}
}

// tierHits is the block cache's hits counted for tier ("memory", "disk").
func (e *readEnv) tierHits(t *testing.T, tier string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ferry_block_cache_hits_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tier" && l.GetValue() == tier {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func (e *readEnv) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if _, err := e.store.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// open opens key as the mount does: looked up through the root listing.
func (e *readEnv) open(t *testing.T, key string) *readHandle {
	t.Helper()
	c, _, err := e.fsys.lookup(t.Context(), "", key)
	if err != nil {
		t.Fatal(err)
	}
	return newReadHandle(newFileNode(e.fsys, nil, c.obj))
}

func read(t *testing.T, h *readHandle, off int64, n int) ([]byte, syscall.Errno) {
	t.Helper()
	res, errno := h.Read(t.Context(), make([]byte, n), off)
	if errno != 0 {
		return nil, errno
	}
	b, st := res.Bytes(make([]byte, n))
	if st != fuse.OK {
		t.Fatalf("ReadResult.Bytes: %v", st)
	}
	return b, 0
}

// readSequentially reads h from start to end in 16 KiB reads and checks
// the bytes against data.
func readSequentially(t *testing.T, h *readHandle, data []byte) {
	t.Helper()
	var got []byte
	for off := int64(0); off < int64(len(data)); off += 16 << 10 {
		b, errno := read(t, h, off, 16<<10)
		if errno != 0 {
			t.Fatalf("read at %d: %v", off, errno)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("sequential reads differ from the object")
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func TestSequentialReadsMatchAndReadAhead(t *testing.T) {
	e := newReadEnv(t, Options{Readahead: 8 * testBlock})
	data := randomBytes(40*testBlock + 123)
	e.put(t, "big", data)
	h := e.open(t, "big")
	defer h.Release(t.Context())
	readSequentially(t, h, data)
	if n := testutil.ToFloat64(e.metrics.prefetched); n < 30 {
		t.Errorf("%v blocks read ahead, want most of the 41", n)
	}
	// Every byte fetched once (readahead and demand reads share
	// fetches), in GETs of whole runs: the window's end moves one block
	// at a time, and is fetched runBlocks blocks at a time all the same.
	if n := e.counts.BytesRead(); n != int64(len(data)) {
		t.Errorf("fetched %d bytes of a %d-byte object", n, len(data))
	}
	if gets, most := e.counts.Requests(metered.Get), int64(41+runBlocks-1)/runBlocks+1; gets > most {
		t.Errorf("%d GETs for 41 blocks, want at most %d: readahead did not fetch whole runs", gets, most)
	}
}

// TestStreamedBlocksStayOnDisk reads a file sequentially through a cache
// with a disk tier: the blocks read ahead go to disk, not to the memory
// tier, where they would double the kernel's page cache. A second
// filesystem on the same cache (nothing in its recent blocks) reads them
// all from disk, without a GET.
func TestStreamedBlocksStayOnDisk(t *testing.T) {
	e := newReadEnvCache(t, Options{Readahead: 8 * testBlock},
		block.Options{MemoryBytes: 4 << 20, Dir: t.TempDir(), DiskBytes: 16 << 20})
	data := randomBytes(40*testBlock + 123)
	e.put(t, "big", data)
	readAll := func(f *filesystem) {
		t.Helper()
		c, _, err := f.lookup(t.Context(), "", "big")
		if err != nil {
			t.Fatal(err)
		}
		h := newReadHandle(newFileNode(f, nil, c.obj))
		defer h.Release(t.Context())
		readSequentially(t, h, data)
	}
	readAll(e.fsys)
	e.opts.Cache.Flush()
	gets := e.counts.Requests(metered.Get)
	again := newFilesystem(t.Context(), e.store, e.opts)
	readAll(again)
	if n := e.counts.Requests(metered.Get); n != gets {
		t.Errorf("second read made %d GETs, want 0", n-gets)
	}
	// The reader's own first blocks are fetched by demand reads, before
	// the readahead window opens, and kept in memory like random reads.
	if mem, disk := e.tierHits(t, "memory"), e.tierHits(t, "disk"); mem > 2 || disk < 39 {
		t.Errorf("second read: %v blocks from memory, %v from disk; want the 41 blocks from disk but the first", mem, disk)
	}
}

func TestRandomReadsMatchAndFetchOnlyTheirBlocks(t *testing.T) {
	e := newReadEnv(t, Options{})
	data := randomBytes(200 * testBlock)
	e.put(t, "r", data)
	h := e.open(t, "r")
	defer h.Release(t.Context())
	rng := mrand.New(mrand.NewPCG(1, 2))
	touched := 0 // blocks touched, counting repeats: at most one GET each
	for range 40 {
		off := rng.Int64N(int64(len(data)))
		n := 1 + rng.IntN(3*testBlock) // some reads span blocks
		b, errno := read(t, h, off, n)
		if errno != 0 {
			t.Fatalf("read at %d: %v", off, errno)
		}
		end := min(off+int64(n), int64(len(data)))
		if !bytes.Equal(b, data[off:end]) {
			t.Fatalf("read [%d, %d) differs", off, end)
		}
		touched += int((end-1)/testBlock - off/testBlock + 1)
	}
	if n := testutil.ToFloat64(e.metrics.prefetched); n != 0 {
		t.Errorf("random reads read %v blocks ahead", n)
	}
	if gets := e.counts.Requests(metered.Get); gets > int64(touched) {
		t.Errorf("%d GETs for %d blocks touched", gets, touched)
	}
	if b, errno := read(t, h, int64(len(data)), 10); errno != 0 || len(b) != 0 {
		t.Errorf("read at EOF = %d bytes, %v", len(b), errno)
	}
}

func TestReplacedObjectNeverMixesVersions(t *testing.T) {
	e := newReadEnv(t, Options{Readahead: -1})
	old := randomBytes(8 * testBlock)
	e.put(t, "v", old)
	h := e.open(t, "v")
	defer h.Release(t.Context())
	if b, errno := read(t, h, 0, testBlock); errno != 0 || !bytes.Equal(b, old[:testBlock]) {
		t.Fatalf("first block: %v", errno)
	}
	// Replace with the same size, so only the version tells them apart.
	e.put(t, "v", randomBytes(len(old)))
	if _, errno := read(t, h, 5*testBlock, 100); errno != syscall.ESTALE {
		t.Fatalf("uncached block of a replaced object: errno %v, want ESTALE", errno)
	}
	if b, errno := read(t, h, 10, 100); errno != 0 || !bytes.Equal(b, old[10:110]) {
		t.Fatalf("cached block of the pinned version: %v", errno)
	}
}

func TestReleaseGivesBackTheReadaheadBudget(t *testing.T) {
	e := newReadEnv(t, Options{Readahead: 16 * testBlock, ReadaheadMemory: 16 * testBlock})
	e.put(t, "a", randomBytes(64*testBlock))
	h := e.open(t, "a")
	for off := int64(0); off < 4*testBlock; off += 4096 {
		if _, errno := read(t, h, off, 4096); errno != 0 {
			t.Fatal(errno)
		}
	}
	if e.fsys.readahead.TryAcquire(16 * testBlock) {
		t.Fatal("the budget was free while a reader had blocks read ahead")
	}
	h.Release(t.Context())
	if !e.fsys.readahead.TryAcquire(16 * testBlock) {
		t.Fatal("Release kept some of the readahead budget")
	}
	if _, errno := read(t, h, 0, 10); errno != 0 {
		t.Fatalf("a read after Release (the kernel never sends one, but it must not break): %v", errno)
	}
}

func TestCancelledReadIsEINTR(t *testing.T) {
	e := newReadEnv(t, Options{})
	e.put(t, "c", randomBytes(testBlock))
	h := e.open(t, "c")
	defer h.Release(t.Context())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, errno := h.Read(ctx, make([]byte, 10), 0); errno != syscall.EINTR {
		t.Fatalf("cancelled read: %v, want EINTR", errno)
	}
}

func TestLookupCachesNegativeAndPrefersListing(t *testing.T) {
	e := newReadEnv(t, Options{MetadataTTL: time.Hour})
	e.put(t, "dir/f", []byte("x"))
	if _, _, err := e.fsys.lookup(t.Context(), "", "missing"); !errors.Is(err, backends.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	before := e.counts.Snapshot()
	if _, _, err := e.fsys.lookup(t.Context(), "", "missing"); !errors.Is(err, backends.ErrNotExist) {
		t.Fatalf("missing again: %v", err)
	}
	if c, _, err := e.fsys.lookup(t.Context(), "", "dir"); err != nil || !c.dir {
		t.Fatalf("dir: %+v, %v", c, err)
	}
	afterDir := e.counts.Snapshot()
	if afterDir[metered.Head] != before[metered.Head]+1 {
		t.Errorf("requests %v then %v: the negative entry was not cached", before, afterDir)
	}
	if _, err := e.fsys.listing(t.Context(), "dir/"); err != nil {
		t.Fatal(err)
	}
	listed := e.counts.Snapshot()
	for _, name := range []string{"f", "nope", "f"} {
		_, _, _ = e.fsys.lookup(t.Context(), "dir/", name)
	}
	if got := e.counts.Snapshot(); got[metered.Head] != listed[metered.Head] || got[metered.List] != listed[metered.List] {
		t.Errorf("lookups in a listed directory made requests: %v then %v", listed, got)
	}
}

func TestOpeningADirectoryListsItsSubdirectoriesAhead(t *testing.T) {
	e := newReadEnv(t, Options{MetadataTTL: time.Hour})
	for _, k := range []string{"a/1", "b/2", "c/d/3", "top"} {
		e.put(t, k, []byte(k))
	}
	root, err := e.fsys.listing(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	e.fsys.prefetchListings("", root)
	e.fsys.ahead.wg.Wait()
	for _, dir := range []string{"a/", "b/", "c/"} {
		if _, _, ok := e.fsys.listings.Get(dir); !ok {
			t.Errorf("%s was not listed ahead", dir)
		}
	}
	if _, _, ok := e.fsys.listings.Get("c/d/"); ok {
		t.Error("a grandchild was listed ahead: prefetch must follow the walk one level at a time")
	}
	lists := e.counts.Requests(metered.List)
	if l, err := e.fsys.listing(t.Context(), "c/"); err != nil || len(l.children) != 1 {
		t.Fatalf("c/: %v, %v", l, err)
	}
	if got := e.counts.Requests(metered.List); got != lists {
		t.Errorf("opening a directory listed ahead made %d LISTs", got-lists)
	}
}

func TestListingAheadFollowsTheWalk(t *testing.T) {
	e := newReadEnv(t, Options{MetadataTTL: time.Hour})
	const dirs = 3 * prefetchAhead
	name := func(i int) string { return fmt.Sprintf("d%02d/", i) }
	for i := range dirs {
		e.put(t, name(i)+"f", []byte("x"))
	}
	listed := func() (n []int) {
		for i := range dirs {
			if _, _, ok := e.fsys.listings.Get(name(i)); ok {
				n = append(n, i)
			}
		}
		return n
	}
	open := func(dir string) {
		t.Helper()
		l, err := e.fsys.listing(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		e.fsys.prefetchListings(dir, l)
		e.fsys.ahead.wg.Wait()
	}
	// Opening the root lists its first subdirectories ahead, not all.
	open("")
	if got := listed(); len(got) != prefetchAhead || got[prefetchAhead-1] != prefetchAhead-1 {
		t.Fatalf("after opening the root, listed %v, want the first %d", got, prefetchAhead)
	}
	// Each subdirectory opened moves the window along its siblings.
	for i := range 3 {
		open(name(i))
		if got := listed(); len(got) != prefetchAhead+i+1 {
			t.Fatalf("after opening %s, listed %v, want the first %d", name(i), got, prefetchAhead+i+1)
		}
	}
	lists := e.counts.Requests(metered.List)
	if want := int64(1 + prefetchAhead + 3); lists != want {
		t.Errorf("%d LISTs, want %d: one per directory listed", lists, want)
	}
}

func TestNoListingAheadWithoutMetadataCache(t *testing.T) {
	e := newReadEnv(t, Options{MetadataTTL: 0})
	e.put(t, "a/1", []byte("x"))
	root, err := e.fsys.listing(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	before := e.counts.Requests(metered.List)
	e.fsys.prefetchListings("", root)
	e.fsys.ahead.wg.Wait()
	if got := e.counts.Requests(metered.List); got != before {
		t.Errorf("%d LISTs ahead with nothing to keep them", got-before)
	}
}

func TestCappedListing(t *testing.T) {
	seq := func(yield func(backends.Entry, error) bool) {
		for i := range 10 {
			if !yield(backends.Entry{ObjectInfo: backends.ObjectInfo{Key: fmt.Sprint(i)}}, nil) {
				return
			}
		}
	}
	var n int
	var last error
	for _, err := range capped(seq, 3, "d/") {
		if err != nil {
			last = err
			break
		}
		n++
	}
	if n != 3 || !errors.Is(last, errTooLarge) {
		t.Fatalf("capped at 3 yielded %d entries then %v", n, last)
	}
	n = 0
	for _, err := range capped(seq, 10, "d/") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("a listing at the cap yielded %d of 10 entries", n)
	}
}

func TestFilesOpenedInOrderAreReadAhead(t *testing.T) {
	e := newReadEnv(t, Options{MetadataTTL: time.Hour})
	const files = 40
	for i := range files {
		e.put(t, fmt.Sprintf("d/f%02d", i), []byte(fmt.Sprint(i)))
	}
	l, err := e.fsys.listing(t.Context(), "d/")
	if err != nil {
		t.Fatal(err)
	}
	d := &dirNode{fsys: e.fsys, key: "d/"}
	readFile := func(i int) {
		c := l.children[i]
		d.opened(c.name)
		h := newReadHandle(newFileNode(e.fsys, d, c.obj))
		defer h.Release(t.Context())
		if b, errno := read(t, h, 0, 10); errno != 0 || string(b) != fmt.Sprint(i) {
			t.Fatalf("f%02d: %q, %v", i, b, errno)
		}
	}
	gets := func() int64 { return e.counts.Requests(metered.Get) }
	waitGets := func(want int64) {
		t.Helper()
		e.fsys.scans.Wait()
		if got := gets(); got != want {
			t.Fatalf("%d GETs once the readaheads ended, want %d", got, want)
		}
	}
	// Out of order: nothing ahead.
	readFile(39)
	readFile(38)
	if gets() != 2 {
		t.Fatalf("%d GETs after two opens out of order, want 2", gets())
	}
	// In order: after the second, the next scanAhead files come ahead.
	readFile(0)
	readFile(1)
	waitGets(4 + scanAhead)
	// Each open in order moves the window by one file: reading files
	// 2..17 costs no GET of their own, only the files entering the
	// window (18..33); every file is fetched once.
	for i := 2; i < 2+scanAhead; i++ {
		readFile(i)
	}
	waitGets(2 + 34) // 36 distinct files, none fetched twice
}
