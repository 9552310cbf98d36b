package memtier

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
)

func TestPutGet(t *testing.T) {
	tier, err := New(1<<20, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	b := []byte("hello")
	tier.Put("k", b)
	tier.Wait()
	got, ok := tier.Get("k")
	if !ok || string(got) != "hello" {
		t.Fatalf("Get = %q, %v", got, ok)
	}
	if _, ok := tier.Get("other"); ok {
		t.Fatal("hit on a key never put")
	}
	if tier.Used() < int64(cap(b)) {
		t.Fatalf("Used = %d, less than the block", tier.Used())
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(0, 1, nil); err == nil {
		t.Fatal("New(0, ...) succeeded")
	}
	if _, err := New(1, 0, nil); err == nil {
		t.Fatal("New(..., 0) succeeded")
	}
}

// TestMemoryBound fills the tier with 8 times its bound and checks, with
// the Go heap's own accounting, that what it keeps stays near the bound.
func TestMemoryBound(t *testing.T) {
	const bound = 8 << 20
	const bs = 64 << 10
	var evicted atomic.Int64
	before := heapInUse()
	tier, err := New(bound, bs, func(int64) { evicted.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	for i := 0; i < 8*bound/bs; i++ {
		tier.Put(strconv.Itoa(i), make([]byte, bs))
		if i%64 == 0 {
			tier.Wait() // keep the set buffer from dropping Puts
		}
	}
	tier.Wait()
	grown := heapInUse() - before
	t.Logf("heap grew %d, used %d, evicted %d", grown, tier.Used(), evicted.Load())
	// The bound plus the documented overhead (counters, bookkeeping): 25%
	// slack is far above the overhead for 64 KiB blocks and far below the
	// 8x that was offered.
	if limit := int64(bound + bound/4); grown > limit {
		t.Fatalf("heap grew by %d bytes holding the tier, bound %d (limit %d)", grown, bound, limit)
	}
	if tier.Used() > bound {
		t.Fatalf("Used = %d over bound %d", tier.Used(), bound)
	}
	if evicted.Load() == 0 {
		t.Fatal("no evictions after offering 8x the bound")
	}
	// The tier must still hold a useful share of the bound, or the test
	// above proves nothing.
	if tier.Used() < bound/2 {
		t.Fatalf("Used = %d, under half the bound", tier.Used())
	}
	runtime.KeepAlive(tier)
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
