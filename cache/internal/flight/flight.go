// Package flight deduplicates concurrent calls for the same key, like
// golang.org/x/sync/singleflight, with two differences the caches need: a
// caller whose context is cancelled returns at once while the call goes on
// for the others, and the call's own context is cancelled only when every
// caller waiting on it has given up.
package flight

import (
	"context"
	"fmt"
	"sync"
)

// Group runs at most one call per key at a time. The zero Group is ready to
// use; a Group must not be copied after first use.
type Group[V any] struct {
	wg sync.WaitGroup // one count per running call

	mu    sync.Mutex
	calls map[string]*call[V] // GUARDED_BY(mu)
	// changed is closed (and dropped) when calls or a call's waiters
	// change; nil when nobody waits for that (see WaitWaiters).
	changed chan struct{} // GUARDED_BY(mu)
}

// call is one execution of a function on behalf of its waiters.
type call[V any] struct {
	done    chan struct{} // closed once val and err are set
	val     V             // written once, before done is closed
	err     error         // written once, before done is closed
	cancel  context.CancelFunc
	waiters int // GUARDED_BY(Group.mu)
}

// Do returns the result of fn for key. If a call for key is already running,
// Do waits for it instead of starting another, so concurrent callers share
// one execution and its result, error included. Results are not remembered:
// once a call has finished, the next Do starts a new one.
//
// fn runs in its own goroutine with a context that carries the values of the
// ctx of the caller that started it but not its deadline or cancellation; that
// context is cancelled when every caller waiting on the call has returned
// early, and a caller arriving after that starts a new call. If ctx is done
// before the result is ready, Do returns ctx.Err() at once and fn goes on for
// the other waiters. fn must not panic.
func (g *Group[V]) Do(ctx context.Context, key string, fn func(ctx context.Context) (V, error)) (V, error) {
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[string]*call[V])
	}
	c, ok := g.calls[key]
	if !ok {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call[V]{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		g.wg.Add(1)
		go g.run(cctx, key, c, fn)
	}
	c.waiters++
	g.changedLocked()
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		g.leave(key, c)
		return zero, ctx.Err()
	}
}

// Wait blocks until every call started by Do has returned, including calls
// every caller has abandoned. No Do may start concurrently with Wait.
func (g *Group[V]) Wait() {
	g.wg.Wait()
}

// WaitWaiters returns once n callers are waiting on the running call for
// key (n == 0: no call runs), or with an error when ctx is done first. It
// is for tests, to know that goroutines have joined a call.
func (g *Group[V]) WaitWaiters(ctx context.Context, key string, n int) error {
	for {
		g.mu.Lock()
		got := 0
		if c, ok := g.calls[key]; ok {
			got = c.waiters
		}
		if got == n {
			g.mu.Unlock()
			return nil
		}
		if g.changed == nil {
			g.changed = make(chan struct{})
		}
		changed := g.changed
		g.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%d callers wait on %q, want %d: %w", got, key, n, ctx.Err())
		}
	}
}

// changedLocked wakes the WaitWaiters calls (mu held).
func (g *Group[V]) changedLocked() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// run executes fn for c and publishes its result.
func (g *Group[V]) run(ctx context.Context, key string, c *call[V], fn func(context.Context) (V, error)) {
	defer g.wg.Done()
	v, err := fn(ctx)
	c.cancel()
	g.mu.Lock()
	if g.calls[key] == c {
		delete(g.calls, key)
		g.changedLocked()
	}
	g.mu.Unlock()
	c.val, c.err = v, err
	close(c.done)
}

// leave records that one waiter of c gave up; the last one to leave cancels
// the call and unlists it so that later callers start afresh.
func (g *Group[V]) leave(key string, c *call[V]) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.waiters--
	g.changedLocked()
	if c.waiters > 0 {
		return
	}
	if g.calls[key] == c {
		delete(g.calls, key)
	}
	c.cancel()
}
