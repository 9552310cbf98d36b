package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDoDeduplicates: many concurrent callers of one key share one call.
func TestDoDeduplicates(t *testing.T) {
	var g Group[int]
	var calls atomic.Int32
	gate := make(chan struct{})
	started := make(chan struct{})
	fn := func(ctx context.Context) (int, error) {
		if calls.Add(1) == 1 {
			close(started)
		}
		<-gate
		return 42, nil
	}
	const n = 64
	var wg sync.WaitGroup
	results := make(chan int, n)
	// The first caller starts the call; the rest join while it is blocked.
	wg.Add(1)
	go func() {
		defer wg.Done()
		v, err := g.Do(context.Background(), "k", fn)
		if err != nil {
			t.Error(err)
		}
		results <- v
	}()
	<-started
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := g.Do(context.Background(), "k", fn)
			if err != nil {
				t.Error(err)
			}
			results <- v
		}()
	}
	waitWaiters(t, &g, "k", n)
	close(gate)
	wg.Wait()
	close(results)
	for v := range results {
		if v != 42 {
			t.Fatalf("got %d, want 42", v)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("fn called %d times, want 1", got)
	}
}

// TestErrorSharedNotRemembered: every waiter sees the error; the next Do
// calls fn again.
func TestErrorSharedNotRemembered(t *testing.T) {
	var g Group[int]
	boom := errors.New("boom")
	var calls atomic.Int32
	fn := func(ctx context.Context) (int, error) { calls.Add(1); return 0, boom }
	for i := 0; i < 2; i++ {
		if _, err := g.Do(context.Background(), "k", fn); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
	}
	if calls.Load() != 2 {
		t.Fatalf("fn called %d times, want 2 (errors are not remembered)", calls.Load())
	}
}

// TestCancelledWaiterReturnsPromptly: a waiter whose ctx is cancelled returns
// ctx.Err() while the call goes on and the other waiter gets the value.
func TestCancelledWaiterReturnsPromptly(t *testing.T) {
	var g Group[string]
	gate := make(chan struct{})
	var fnCtx context.Context
	started := make(chan struct{})
	fn := func(ctx context.Context) (string, error) {
		fnCtx = ctx
		close(started)
		<-gate
		return "v", nil
	}
	other := make(chan string, 1)
	go func() {
		v, _ := g.Do(context.Background(), "k", fn)
		other <- v
	}()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := g.Do(ctx, "k", fn)
		errc <- err
	}()
	waitWaiters(t, &g, "k", 2)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled waiter did not return")
	}
	if fnCtx.Err() != nil {
		t.Fatal("call cancelled while another caller still waits")
	}
	close(gate)
	if v := <-other; v != "v" {
		t.Fatalf("other waiter got %q", v)
	}
	g.Wait()
}

// TestAllWaitersGoneCancelsCall: when the last waiter leaves, fn's ctx is
// cancelled and a new caller starts a new call.
func TestAllWaitersGoneCancelsCall(t *testing.T) {
	var g Group[int]
	started := make(chan context.Context, 2)
	var calls atomic.Int32
	fn := func(ctx context.Context) (int, error) {
		n := calls.Add(1)
		started <- ctx
		if n == 1 {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		return 7, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := g.Do(ctx, "k", fn)
		errc <- err
	}()
	first := <-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	<-first.Done() // blocks forever (test timeout) if the call is not cancelled
	v, err := g.Do(context.Background(), "k", fn)
	if err != nil || v != 7 {
		t.Fatalf("second Do = %d, %v; want 7, nil", v, err)
	}
	g.Wait()
	if calls.Load() != 2 {
		t.Fatalf("fn called %d times, want 2", calls.Load())
	}
}

// TestDoneContextNoCall: an already-cancelled ctx starts nothing.
func TestDoneContextNoCall(t *testing.T) {
	var g Group[int]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := g.Do(ctx, "k", func(context.Context) (int, error) {
		t.Error("fn called")
		return 0, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestValuesPropagate: fn's ctx carries the starting caller's values.
func TestValuesPropagate(t *testing.T) {
	type ctxKey struct{}
	var g Group[string]
	ctx := context.WithValue(context.Background(), ctxKey{}, "traced")
	v, err := g.Do(ctx, "k", func(ctx context.Context) (string, error) {
		s, _ := ctx.Value(ctxKey{}).(string)
		return s, nil
	})
	if err != nil || v != "traced" {
		t.Fatalf("got %q, %v", v, err)
	}
}

// waitWaiters returns once key's call has n waiters (failing the test
// after 10 seconds).
func waitWaiters[V any](t *testing.T, g *Group[V], key string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := g.WaitWaiters(ctx, key, n); err != nil {
		t.Fatal(err)
	}
}
