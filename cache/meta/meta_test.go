package meta

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newCache(t *testing.T, ttl time.Duration, max int) (*Cache[string], *clock) {
	clk := &clock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := New[string](ttl, max, clk.Now)
	t.Cleanup(func() {
		if err := c.checkInvariants(); err != nil {
			t.Error(err)
		}
	})
	return c, clk
}

func wantHit(t *testing.T, c *Cache[string], key, want string) {
	t.Helper()
	v, neg, ok := c.Get(key)
	if !ok || neg || v != want {
		t.Fatalf("Get(%q) = %q, negative %v, ok %v; want %q", key, v, neg, ok, want)
	}
}

func wantMiss(t *testing.T, c *Cache[string], key string) {
	t.Helper()
	if v, neg, ok := c.Get(key); ok {
		t.Fatalf("Get(%q) = %q, negative %v; want a miss", key, v, neg)
	}
}

func TestTTLExpiry(t *testing.T) {
	c, clk := newCache(t, time.Minute, 0)
	c.Put("a", "1")
	clk.Advance(59 * time.Second)
	wantHit(t, c, "a", "1")
	clk.Advance(time.Second)
	wantMiss(t, c, "a")
	if c.Len() != 0 {
		t.Fatal("expired entry kept")
	}
	// Rewriting restarts the TTL.
	c.Put("b", "1")
	clk.Advance(50 * time.Second)
	c.Put("b", "2")
	clk.Advance(50 * time.Second)
	wantHit(t, c, "b", "2")
}

func TestExpiredDroppedOnWrite(t *testing.T) {
	c, clk := newCache(t, time.Minute, 0)
	for i := 0; i < 10; i++ {
		c.Put(fmt.Sprint(i), "x")
	}
	clk.Advance(2 * time.Minute)
	c.Put("fresh", "y")
	if c.Len() != 1 {
		t.Fatalf("%d entries after the others expired, want 1", c.Len())
	}
}

func TestForeverAndNever(t *testing.T) {
	forever, clk := newCache(t, -1, 0)
	forever.Put("a", "1")
	clk.Advance(1000 * time.Hour)
	wantHit(t, forever, "a", "1")

	never, _ := newCache(t, 0, 0)
	never.Put("a", "1")
	never.PutNegative("b")
	wantMiss(t, never, "a")
	wantMiss(t, never, "b")
	var calls atomic.Int32
	for i := 0; i < 2; i++ {
		never.Do(context.Background(), "a", func(context.Context) (string, error) { calls.Add(1); return "v", nil }, nil)
	}
	if calls.Load() != 2 {
		t.Fatalf("ttl 0: %d loads for 2 sequential Do, want 2", calls.Load())
	}
}

func TestNegative(t *testing.T) {
	c, clk := newCache(t, time.Minute, 0)
	c.PutNegative("gone")
	v, neg, ok := c.Get("gone")
	if !ok || !neg || v != "" {
		t.Fatalf("Get = %q, %v, %v; want negative hit", v, neg, ok)
	}
	_, err := c.Do(context.Background(), "gone", func(context.Context) (string, error) {
		t.Error("load called for a negative entry")
		return "", nil
	}, nil)
	if !errors.Is(err, ErrNotExist) {
		t.Fatalf("Do on negative entry: %v", err)
	}
	clk.Advance(time.Minute)
	wantMiss(t, c, "gone") // negative entries expire like the others
	c.PutNegative("x")
	c.Put("x", "back")
	wantHit(t, c, "x", "back")
}

func TestBoundEvictsOldest(t *testing.T) {
	c, _ := newCache(t, -1, 3)
	for _, k := range []string{"a", "b", "c"} {
		c.Put(k, k)
	}
	c.Put("a", "a2") // rewriting makes "a" the newest
	c.Put("d", "d")
	wantMiss(t, c, "b")
	wantHit(t, c, "a", "a2")
	wantHit(t, c, "c", "c")
	wantHit(t, c, "d", "d")
	if c.Len() != 3 {
		t.Fatalf("Len = %d", c.Len())
	}
}

func TestInvalidate(t *testing.T) {
	c, _ := newCache(t, -1, 0)
	for _, k := range []string{"data/a", "data/b/c", "data2", "other/data/x"} {
		c.Put(k, k)
	}
	c.Invalidate("data2")
	wantMiss(t, c, "data2")
	c.InvalidatePrefix("data/")
	wantMiss(t, c, "data/a")
	wantMiss(t, c, "data/b/c")
	wantHit(t, c, "other/data/x", "other/data/x")
	c.InvalidatePrefix("")
	if c.Len() != 0 {
		t.Fatal("InvalidatePrefix(\"\") left entries")
	}
}

func TestDoLoadsOnceAndCaches(t *testing.T) {
	c, clk := newCache(t, time.Minute, 0)
	var calls atomic.Int32
	gate := make(chan struct{})
	load := func(context.Context) (string, error) { calls.Add(1); <-gate; return "loaded", nil }
	const n = 32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := c.Do(context.Background(), "k", load, nil); err != nil || v != "loaded" {
				t.Errorf("Do = %q, %v", v, err)
			}
		}()
	}
	waitWaiters(t, c, "k", n)
	close(gate)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("load called %d times for %d concurrent Do", calls.Load(), n)
	}
	wantHit(t, c, "k", "loaded")
	clk.Advance(time.Minute)
	c.Do(context.Background(), "k", load, nil)
	if calls.Load() != 2 {
		t.Fatal("Do did not reload after expiry")
	}
}

func TestDoErrors(t *testing.T) {
	c, _ := newCache(t, time.Minute, 0)
	notFound := errors.New("backend: not found")
	isNotExist := func(err error) bool { return errors.Is(err, notFound) }
	var calls atomic.Int32
	missing := func(context.Context) (string, error) { calls.Add(1); return "", fmt.Errorf("stat: %w", notFound) }
	for i := 0; i < 2; i++ {
		if _, err := c.Do(context.Background(), "m", missing, isNotExist); !errors.Is(err, notFound) {
			t.Fatalf("Do %d: %v, want the not-found error", i, err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("not-found loaded %d times, want 1 (cached negative)", calls.Load())
	}
	if _, neg, ok := c.Get("m"); !ok || !neg {
		t.Fatal("not-found not cached as negative")
	}

	boom := errors.New("timeout")
	calls.Store(0)
	failing := func(context.Context) (string, error) { calls.Add(1); return "", boom }
	for i := 0; i < 2; i++ {
		if _, err := c.Do(context.Background(), "f", failing, isNotExist); !errors.Is(err, boom) {
			t.Fatalf("Do: %v", err)
		}
	}
	if calls.Load() != 2 {
		t.Fatalf("transient error cached: %d loads for 2 Do", calls.Load())
	}
}

func TestDoCancelledCallerReturnsAndLoadIsCached(t *testing.T) {
	c, _ := newCache(t, time.Minute, 0)
	gate := make(chan struct{})
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	// A second caller keeps the load alive while the first gives up.
	other := make(chan string, 1)
	load := func(context.Context) (string, error) { close(started); <-gate; return "v", nil }
	go func() { _, err := c.Do(ctx, "k", load, nil); errc <- err }()
	<-started
	go func() { v, _ := c.Do(context.Background(), "k", load, nil); other <- v }()
	waitWaiters(t, c, "k", 2)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Do: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled Do did not return while the load was blocked")
	}
	close(gate)
	if v := <-other; v != "v" {
		t.Fatalf("other caller got %q", v)
	}
	wantHit(t, c, "k", "v")
}

// TestInvalidateDuringLoad: a load that began before an invalidation must
// not cache what it read, and later callers must not join it.
func TestInvalidateDuringLoad(t *testing.T) {
	c, _ := newCache(t, time.Minute, 0)
	gate := make(chan struct{})
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Do(context.Background(), "dir/x", func(context.Context) (string, error) {
			close(started)
			<-gate
			return "stale", nil
		}, nil)
	}()
	<-started
	c.InvalidatePrefix("dir/")
	v, err := c.Do(context.Background(), "dir/x", func(context.Context) (string, error) { return "fresh", nil }, nil)
	if err != nil || v != "fresh" {
		t.Fatalf("Do after invalidation = %q, %v; want a new load", v, err)
	}
	close(gate)
	<-done
	wantHit(t, c, "dir/x", "fresh")
}

// A Do whose lookup missed just before another load stored its result
// (the other load's flight already gone) finds that result when its own
// flight starts, and loads nothing: here the entry is stored between the
// two, as that other load would.
func TestDoLooksUpAgainBeforeLoading(t *testing.T) {
	c, _ := newCache(t, time.Minute, 0)
	var calls atomic.Int32
	load := func(context.Context) (string, error) { calls.Add(1); return "loaded", nil }
	_, gen := c.lookup("k") // Do's lookup: a miss
	c.Put("k", "stored")    // the other load's result
	v, err := c.loader("k", gen, load, nil)(context.Background())
	if err != nil || v != "stored" || calls.Load() != 0 {
		t.Fatalf("loader = %q, %v after %d loads; want the stored value and no load", v, err, calls.Load())
	}
	c.PutNegative("n")
	if _, err := c.loader("n", gen, load, nil)(context.Background()); !errors.Is(err, ErrNotExist) || calls.Load() != 0 {
		t.Fatalf("loader of a negative entry: %v after %d loads; want ErrNotExist and no load", err, calls.Load())
	}
	if v, err := c.loader("other", gen, load, nil)(context.Background()); err != nil || v != "loaded" || calls.Load() != 1 {
		t.Fatalf("loader of a missing key = %q, %v after %d loads; want one load", v, err, calls.Load())
	}
}

// waitWaiters returns once n callers wait on the load of key begun before
// any invalidation (failing the test after 10 seconds).
func waitWaiters[V any](t *testing.T, c *Cache[V], key string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.flights.WaitWaiters(ctx, flightKey(0, key), n); err != nil {
		t.Fatal(err)
	}
}
