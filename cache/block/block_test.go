package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const testBlock = 4096

// content is the deterministic content of block k.
func content(k Key) []byte {
	b := make([]byte, testBlock)
	for i := range b {
		b[i] = byte(len(k.Object)) + byte(k.Index*31) + byte(i)
	}
	return b
}

// source is a fetch function factory that counts calls.
type source struct{ calls atomic.Int32 }

func (s *source) fetch(k Key) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		s.calls.Add(1)
		return content(k), nil
	}
}

// noFetch fails the test if called: the block must come from a tier.
func noFetch(t *testing.T) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		t.Error("fetch called for a block that should be cached")
		return nil, errors.New("unexpected fetch")
	}
}

func openCache(t *testing.T, opts Options) *Cache {
	t.Helper()
	if opts.BlockSize == 0 {
		opts.BlockSize = testBlock
	}
	c, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get(t *testing.T, c *Cache, k Key, fetch func(context.Context) ([]byte, error)) {
	t.Helper()
	b, err := c.Get(context.Background(), k, fetch)
	if err != nil {
		t.Fatalf("Get(%v): %v", k, err)
	}
	if !bytes.Equal(b, content(k)) {
		t.Fatalf("Get(%v): wrong content", k)
	}
}

// value reads one series of a registered metric, 0 if absent.
func value(t *testing.T, reg *prometheus.Registry, name, tier string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if tier != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != tier) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func withMetrics(t *testing.T, opts Options) (Options, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	opts.Metrics = m
	return opts, reg
}

// waitWaiters returns once n callers wait on k's fetch (failing the test
// after 10 seconds).
func waitWaiters(t *testing.T, c *Cache, k Key, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.flights.WaitWaiters(ctx, k.memKey(), n); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentMissesFetchOnce(t *testing.T) {
	for name, opts := range map[string]Options{
		"both":     {MemoryBytes: 1 << 20, Dir: t.TempDir(), DiskBytes: 1 << 20},
		"memory":   {MemoryBytes: 1 << 20},
		"disk":     {Dir: t.TempDir(), DiskBytes: 1 << 20},
		"uncached": {},
	} {
		t.Run(name, func(t *testing.T) {
			c := openCache(t, opts)
			defer c.Close()
			k := Key{Object: "dir/obj", Version: "v1", Index: 2}
			var calls atomic.Int32
			gate := make(chan struct{})
			fetch := func(context.Context) ([]byte, error) {
				calls.Add(1)
				<-gate
				return content(k), nil
			}
			const n = 50
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b, err := c.Get(context.Background(), k, fetch)
					if err != nil || !bytes.Equal(b, content(k)) {
						t.Errorf("Get: %v", err)
					}
				}()
			}
			waitWaiters(t, c, k, n)
			close(gate)
			wg.Wait()
			if got := calls.Load(); got != 1 {
				t.Fatalf("fetch called %d times for %d concurrent misses", got, n)
			}
		})
	}
}

func TestFetchErrorSharedNotCached(t *testing.T) {
	opts, reg := withMetrics(t, Options{MemoryBytes: 1 << 20, Dir: t.TempDir(), DiskBytes: 1 << 20})
	c := openCache(t, opts)
	defer c.Close()
	k := Key{Object: "o", Version: "v", Index: 0}
	boom := errors.New("backend down")
	gate := make(chan struct{})
	var calls atomic.Int32
	fail := func(context.Context) ([]byte, error) { calls.Add(1); <-gate; return nil, boom }
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { _, err := c.Get(context.Background(), k, fail); errs <- err }()
	}
	waitWaiters(t, c, k, 2)
	close(gate)
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, boom) {
			t.Fatalf("waiter %d: err = %v, want the fetch error", i, err)
		}
	}
	var src source
	get(t, c, k, src.fetch(k))
	if calls.Load() != 1 || src.calls.Load() != 1 {
		t.Fatalf("failing fetch called %d times, retry %d times; want 1 and 1", calls.Load(), src.calls.Load())
	}
	if v := value(t, reg, "ferry_block_cache_fetch_errors_total", ""); v != 1 {
		t.Fatalf("fetch errors = %v", v)
	}
}

func TestCancelledWaiterReturnsPromptly(t *testing.T) {
	c := openCache(t, Options{Dir: t.TempDir(), DiskBytes: 1 << 20})
	defer c.Close()
	k := Key{Object: "slow", Version: "v", Index: 0}
	gate := make(chan struct{})
	var fetchCtx context.Context
	started := make(chan struct{})
	slow := func(ctx context.Context) ([]byte, error) {
		fetchCtx = ctx
		close(started)
		select {
		case <-gate:
			return content(k), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	patient := make(chan error, 1)
	go func() { _, err := c.Get(context.Background(), k, slow); patient <- err }()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	impatient := make(chan error, 1)
	go func() { _, err := c.Get(ctx, k, slow); impatient <- err }()
	waitWaiters(t, c, k, 2)
	cancel()
	select {
	case err := <-impatient:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Get: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled Get did not return while the fetch was blocked")
	}
	if fetchCtx.Err() != nil {
		t.Fatal("fetch cancelled although another caller waits")
	}
	close(gate)
	if err := <-patient; err != nil {
		t.Fatal(err)
	}
	c.Flush()
	get(t, c, k, noFetch(t)) // the fetch's result was cached
}

func TestAllWaitersGoneCancelsFetch(t *testing.T) {
	c := openCache(t, Options{MemoryBytes: 1 << 20})
	defer c.Close()
	k := Key{Object: "o", Version: "v", Index: 0}
	ctx, cancel := context.WithCancel(context.Background())
	fetchDone := make(chan error, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, k, func(fctx context.Context) ([]byte, error) {
			cancel()
			<-fctx.Done() // blocks until the test times out if never cancelled
			fetchDone <- fctx.Err()
			return nil, fctx.Err()
		})
		errc <- err
	}()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get: %v", err)
	}
	if err := <-fetchDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("fetch ctx: %v", err)
	}
}

// blockFile returns the only block file under dir.
func blockFile(t *testing.T, dir string) string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.Contains(d.Name(), "-") {
			found = append(found, p)
		}
		return err
	})
	if len(found) != 1 {
		t.Fatalf("block files: %v", found)
	}
	return found[0]
}

func TestTornDiskBlockRefetched(t *testing.T) {
	dir := t.TempDir()
	k := Key{Object: "model.bin", Version: "etag-1", Index: 7}
	c := openCache(t, Options{Dir: dir, DiskBytes: 1 << 20})
	var src source
	get(t, c, k, src.fetch(k))
	c.Close()

	// Flip one byte of the content, as a torn write or bit rot would.
	path := blockFile(t, dir)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	os.WriteFile(path, b, 0o644)

	opts, reg := withMetrics(t, Options{MemoryBytes: 1 << 20, Dir: dir, DiskBytes: 1 << 20})
	c = openCache(t, opts)
	get(t, c, k, src.fetch(k))
	if src.calls.Load() != 2 {
		t.Fatalf("fetch calls = %d, want 2 (torn block refetched)", src.calls.Load())
	}
	if v := value(t, reg, "ferry_block_cache_disk_corrupt_total", ""); v != 1 {
		t.Fatalf("corrupt counter = %v", v)
	}
	c.Close()
	c = openCache(t, Options{Dir: dir, DiskBytes: 1 << 20})
	defer c.Close()
	get(t, c, k, noFetch(t)) // the refetched block was written back whole
}

func TestRestartServesFromDisk(t *testing.T) {
	dir := t.TempDir()
	keys := []Key{{"a", "v", 0}, {"a", "v", 1}, {"b/c", "gen-9", 0}}
	c := openCache(t, Options{MemoryBytes: 1 << 20, Dir: dir, DiskBytes: 1 << 20})
	var src source
	for _, k := range keys {
		get(t, c, k, src.fetch(k))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	opts, reg := withMetrics(t, Options{MemoryBytes: 1 << 20, Dir: dir, DiskBytes: 1 << 20})
	c = openCache(t, opts)
	defer c.Close()
	if v := value(t, reg, "ferry_block_cache_bytes", tierDisk); v != float64(3*(testBlock+16)) {
		t.Fatalf("disk bytes after restart = %v", v)
	}
	for _, k := range keys {
		get(t, c, k, noFetch(t))
	}
	c.mem.Wait() // promotions to memory are asynchronous
	for _, k := range keys {
		get(t, c, k, noFetch(t))
	}
	if d, m := value(t, reg, "ferry_block_cache_hits_total", tierDisk), value(t, reg, "ferry_block_cache_hits_total", tierMemory); d != 3 || m != 3 {
		t.Fatalf("hits: disk %v memory %v, want 3 and 3 (promoted after the disk hit)", d, m)
	}
	if v := value(t, reg, "ferry_block_cache_fetches_total", ""); v != 0 {
		t.Fatalf("fetches after restart = %v", v)
	}
}

// TestStreamedKeptOnDisk checks where streamed blocks go: to disk only,
// whether fetched (GetStreamed), added (AddStreamed) or found on disk; a
// plain Get of a block on disk still promotes it to memory. Without a disk
// tier they are not kept at all (the page cache holds them).
func TestStreamedKeptOnDisk(t *testing.T) {
	inMemory := func(c *Cache, k Key) bool {
		c.mem.Wait()
		_, ok := c.mem.Get(k.memKey())
		return ok
	}
	fetched, added, plain := Key{"s", "v", 0}, Key{"s", "v", 1}, Key{"p", "v", 0}
	dir := t.TempDir()
	c := openCache(t, Options{MemoryBytes: 1 << 20, Dir: dir, DiskBytes: 1 << 20})
	var src source
	if b, err := c.GetStreamed(context.Background(), fetched, src.fetch(fetched)); err != nil || !bytes.Equal(b, content(fetched)) {
		t.Fatalf("GetStreamed = %v", err)
	}
	if err := c.AddStreamed(added, content(added)); err != nil {
		t.Fatal(err)
	}
	get(t, c, plain, src.fetch(plain))
	c.Flush()
	for _, k := range []Key{fetched, added} {
		if inMemory(c, k) || !c.disk.Has(c.diskID(k)) {
			t.Errorf("streamed block %v: in memory %v, on disk %v; want disk only", k, inMemory(c, k), c.disk.Has(c.diskID(k)))
		}
	}
	if !inMemory(c, plain) {
		t.Error("a block fetched by Get is not in memory")
	}
	// Found on disk: a streamed read leaves it there, a plain one
	// promotes it.
	if b, err := c.GetStreamed(context.Background(), fetched, noFetch(t)); err != nil || !bytes.Equal(b, content(fetched)) {
		t.Fatalf("GetStreamed from disk = %v", err)
	}
	if inMemory(c, fetched) {
		t.Error("GetStreamed promoted a block from disk to memory")
	}
	get(t, c, fetched, noFetch(t))
	if !inMemory(c, fetched) {
		t.Error("Get did not promote a block from disk to memory")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = openCache(t, Options{MemoryBytes: 1 << 20})
	defer c.Close()
	if _, err := c.GetStreamed(context.Background(), fetched, src.fetch(fetched)); err != nil {
		t.Fatal(err)
	}
	if err := c.AddStreamed(added, content(added)); err != nil {
		t.Fatal(err)
	}
	get(t, c, plain, src.fetch(plain))
	for _, k := range []Key{fetched, added} {
		if inMemory(c, k) {
			t.Errorf("without a disk tier, streamed block %v is in memory", k)
		}
	}
	if !inMemory(c, plain) {
		t.Error("without a disk tier, a block fetched by Get is not in memory")
	}
}

// A streamed block that cannot be written to disk (here: the disk tier's
// temporary directory was removed under it) is kept in memory instead,
// and the failure is counted.
func TestStreamedBlockNotWrittenStaysInMemory(t *testing.T) {
	dir := t.TempDir()
	opts, reg := withMetrics(t, Options{MemoryBytes: 1 << 20, Dir: dir, DiskBytes: 1 << 20})
	c := openCache(t, opts)
	if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	k := Key{"s", "v", 0}
	var src source
	if b, err := c.GetStreamed(context.Background(), k, src.fetch(k)); err != nil || !bytes.Equal(b, content(k)) {
		t.Fatalf("GetStreamed = %v", err)
	}
	c.Flush()
	c.mem.Wait()
	if c.disk.Has(c.diskID(k)) {
		t.Fatal("the block is on disk although its write failed")
	}
	if n := value(t, reg, "ferry_block_cache_disk_errors_total", ""); n != 1 {
		t.Errorf("%v disk errors counted, want 1", n)
	}
	get(t, c, k, noFetch(t)) // from memory
}

// TestDiskWritesBehind: a fetched block is returned while it is being
// written to disk, up to DiskWritesBehind blocks at once; Close waits for
// those writes, so a cache opened again on the directory has every block.
func TestDiskWritesBehind(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, Options{MemoryBytes: 1 << 20, Dir: dir, DiskBytes: 1 << 20})
	release := make(chan struct{})
	var writing atomic.Int32
	c.beforeWrite = func() { writing.Add(1); <-release }
	var keys []Key
	for i := range DiskWritesBehind {
		keys = append(keys, Key{"w", "v", int64(i)})
	}
	got := make(chan struct{})
	go func() {
		defer close(got)
		var src source
		for _, k := range keys {
			get(t, c, k, src.fetch(k))
		}
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("Get waited for its block's disk write")
	}
	if c.disk.Has(c.diskID(keys[0])) {
		t.Error("a block is on disk before its write was let through")
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := writing.Load(); n != int32(len(keys)) {
		t.Errorf("%d disk writes for %d blocks", n, len(keys))
	}
	c = openCache(t, Options{Dir: dir, DiskBytes: 1 << 20})
	defer c.Close()
	for _, k := range keys {
		get(t, c, k, noFetch(t)) // Close waited for the writes
	}
}

func TestDiskStaysUnderBound(t *testing.T) {
	dir := t.TempDir()
	const bound = 10 * (testBlock + 16)
	opts, reg := withMetrics(t, Options{Dir: dir, DiskBytes: bound})
	c := openCache(t, opts)
	defer c.Close()
	var src source
	for i := 0; i < 50; i++ {
		k := Key{Object: fmt.Sprintf("obj-%d", i%7), Version: "v", Index: int64(i)}
		get(t, c, k, src.fetch(k))
		c.Flush()
		var total int64
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && d.Name() != "lock" {
				info, _ := d.Info()
				total += info.Size()
			}
			return err
		})
		if total > bound {
			t.Fatalf("after %d blocks: %d bytes on disk, bound %d", i+1, total, bound)
		}
	}
	if v := value(t, reg, "ferry_block_cache_evictions_total", tierDisk); v != 40 {
		t.Fatalf("disk evictions = %v, want 40", v)
	}
	if v := value(t, reg, "ferry_block_cache_bytes", tierDisk); v != bound {
		t.Fatalf("disk bytes gauge = %v, want %v", v, bound)
	}
}

// TestMemoryBound reads 8x the memory bound through a memory-only cache and
// checks with the Go heap's accounting that the cache keeps near the bound.
func TestMemoryBound(t *testing.T) {
	const bound = 8 << 20
	const bs = 64 << 10
	before := heapAlloc()
	c := openCache(t, Options{BlockSize: bs, MemoryBytes: bound})
	defer c.Close()
	for i := 0; i < 8*bound/bs; i++ {
		_, err := c.Get(context.Background(), Key{Object: "big", Version: "v", Index: int64(i)},
			func(context.Context) ([]byte, error) { return make([]byte, bs), nil })
		if err != nil {
			t.Fatal(err)
		}
		if i%64 == 0 {
			c.mem.Wait()
		}
	}
	c.mem.Wait()
	grown := heapAlloc() - before
	if limit := int64(bound + bound/4); grown > limit {
		t.Fatalf("heap grew by %d bytes, bound %d (limit with overhead %d)", grown, bound, limit)
	}
	if used := c.mem.Used(); used < bound/2 || used > bound {
		t.Fatalf("memory tier holds %d, want between half the bound and the bound %d", used, bound)
	}
	runtime.KeepAlive(c)
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, Options{MemoryBytes: 1 << 20, Dir: dir, DiskBytes: 1 << 20})
	_, err := Open(Options{BlockSize: testBlock, Dir: dir, DiskBytes: 1 << 20})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open: %v, want ErrLocked naming %s", err, dir)
	}
	c.Close()
	c = openCache(t, Options{Dir: dir, DiskBytes: 1 << 20})
	c.Close()
}

func TestCloseCancelsFetches(t *testing.T) {
	c := openCache(t, Options{MemoryBytes: 1 << 20, Dir: t.TempDir(), DiskBytes: 1 << 20})
	k := Key{Object: "o", Version: "v", Index: 0}
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), k, func(ctx context.Context) ([]byte, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		errc <- err
	}()
	<-started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get during Close: %v", err)
	}
	if _, err := c.Get(context.Background(), k, noFetch(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	c := openCache(t, Options{MemoryBytes: 1 << 20, Dir: t.TempDir(), DiskBytes: 1 << 20})
	defer c.Close()
	big := func(context.Context) ([]byte, error) { return make([]byte, testBlock+1), nil }
	k := Key{Object: "o", Version: "v", Index: 0}
	if _, err := c.Get(context.Background(), k, big); !errors.Is(err, ErrBlockTooLarge) {
		t.Fatalf("oversized block: %v", err)
	}
	var src source
	get(t, c, k, src.fetch(k)) // the oversized block was not cached
	if src.calls.Load() != 1 {
		t.Fatal("oversized block was cached")
	}
	if _, err := c.Get(context.Background(), Key{Object: "o", Index: -1}, noFetch(t)); !errors.Is(err, ErrBadKey) {
		t.Fatalf("negative index: %v", err)
	}
	for _, o := range []Options{{BlockSize: -1}, {MemoryBytes: -1}, {Dir: t.TempDir()}, {Dir: t.TempDir(), DiskBytes: testBlock},
		// a large block's file holds a page of header
		{Dir: t.TempDir(), BlockSize: 64 << 10, DiskBytes: 64<<10 + 16}} {
		if o.BlockSize == 0 {
			o.BlockSize = testBlock
		}
		if _, err := Open(o); err == nil {
			t.Fatalf("Open(%+v) succeeded", o)
		}
	}
}

func TestEmptyBlock(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, Options{Dir: dir, DiskBytes: 1 << 20})
	k := Key{Object: "empty", Version: "v", Index: 0}
	empty := func(context.Context) ([]byte, error) { return nil, nil }
	if b, err := c.Get(context.Background(), k, empty); err != nil || len(b) != 0 {
		t.Fatalf("Get = %d bytes, %v", len(b), err)
	}
	c.Close()
	c = openCache(t, Options{Dir: dir, DiskBytes: 1 << 20})
	defer c.Close()
	b, err := c.Get(context.Background(), k, func(context.Context) ([]byte, error) {
		return nil, errors.New("refetched an empty block")
	})
	if err != nil || len(b) != 0 {
		t.Fatalf("after restart: %d bytes, %v", len(b), err)
	}
}

func TestMemKeyUnambiguous(t *testing.T) {
	keys := []Key{
		{"a", "b", 1}, {"ab", "", 1}, {"", "ab", 1},
		{"a", "b/1", 1}, {"a", "b", 11}, {"a/", "b", 1},
		{"1:a", "", 0}, {"", "1:a", 0}, {"a\x00", "b", 1},
	}
	seen := map[string]Key{}
	for _, k := range keys {
		if prev, dup := seen[k.memKey()]; dup {
			t.Fatalf("%+v and %+v share memory key %q", prev, k, k.memKey())
		}
		seen[k.memKey()] = k
	}
}

func TestMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("registering the metrics twice succeeded")
	}
	if _, err := NewMetrics(nil); err != nil {
		t.Fatal(err)
	}
}

func TestBlockSizeChangeIgnoresOldBlocks(t *testing.T) {
	dir := t.TempDir()
	k := Key{Object: "o", Version: "v", Index: 1}
	c := openCache(t, Options{Dir: dir, DiskBytes: 1 << 20})
	var src source
	get(t, c, k, src.fetch(k))
	c.Close()
	c = openCache(t, Options{BlockSize: 2 * testBlock, Dir: dir, DiskBytes: 1 << 20})
	defer c.Close()
	get(t, c, k, src.fetch(k))
	if src.calls.Load() != 2 {
		t.Fatal("block stored under another BlockSize was served")
	}
}

func TestAddedBlocksServedAndPersisted(t *testing.T) {
	dir := t.TempDir()
	k, other := Key{"a", "v", 3}, Key{"a", "v", 4}
	opts, reg := withMetrics(t, Options{MemoryBytes: 1 << 20, Dir: dir, DiskBytes: 1 << 20})
	c := openCache(t, opts)
	if c.Cached(k) {
		t.Fatal("Cached before Add")
	}
	if err := c.Add(k, content(k)); err != nil {
		t.Fatal(err)
	}
	c.Flush()
	if !c.Cached(k) || c.Cached(other) {
		t.Fatalf("Cached after Add: %v, of another block %v; want true, false", c.Cached(k), c.Cached(other))
	}
	get(t, c, k, noFetch(t))
	if v := value(t, reg, "ferry_block_cache_fetches_total", ""); v != 1 {
		t.Errorf("fetches counted = %v, want 1 (the added block)", v)
	}
	if err := c.Add(Key{"a", "v", -1}, nil); !errors.Is(err, ErrBadKey) {
		t.Errorf("Add with a negative index: %v, want ErrBadKey", err)
	}
	if err := c.Add(other, make([]byte, testBlock+1)); !errors.Is(err, ErrBlockTooLarge) {
		t.Errorf("Add of an oversized block: %v, want ErrBlockTooLarge", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(other, content(other)); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
	if c.Cached(k) {
		t.Error("Cached after Close")
	}
	// The next Cache over the directory finds the added block on disk.
	c = openCache(t, Options{Dir: dir, DiskBytes: 1 << 20})
	defer c.Close()
	if !c.Cached(k) {
		t.Fatal("an added block is not on disk after a restart")
	}
	get(t, c, k, noFetch(t))
}
