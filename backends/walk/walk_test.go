package walk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/local"
	"github.com/ferryio/ferry/backends/walk"
)

// The order and field checks run on every store in the conformance suite
// (backendtest, case List/Walk); these cover concurrency and failure on a
// local directory.

// gated wraps a real backend: every ListDir counts itself in flight and
// waits at the gate, so that the test sees how many the walk runs at once;
// ListDir of failAt, when set, fails.
type gated struct {
	backends.Backend
	failAt string
	gate   chan struct{}

	mu       sync.Mutex
	inFlight int
	peak     int
	calls    atomic.Int64
}

var errBroken = errors.New("broken listing")

func (g *gated) ListDir(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		g.calls.Add(1)
		g.mu.Lock()
		g.inFlight++
		g.peak = max(g.peak, g.inFlight)
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			g.inFlight--
			g.mu.Unlock()
		}()
		if g.gate != nil {
			select {
			case <-g.gate:
			case <-ctx.Done():
				yield(backends.Entry{}, ctx.Err())
				return
			}
		}
		if g.failAt != "" && prefix == g.failAt {
			yield(backends.Entry{}, errBroken)
			return
		}
		for e, err := range g.Backend.ListDir(ctx, prefix) {
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// tree puts dirs x files keys under "d%02d/" into a fresh local store.
func tree(t *testing.T, dirs, files int) backends.Backend {
	t.Helper()
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for d := range dirs {
		for f := range files {
			key := fmt.Sprintf("d%02d/sub/f%d", d, f)
			if _, err := b.Put(t.Context(), key, bytes.NewReader([]byte(key)), int64(len(key)), backends.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b
}

func keys(t *testing.T, seq iter.Seq2[backends.Entry, error]) []string {
	t.Helper()
	var out []string
	for e, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Key)
	}
	return out
}

func TestConcurrencyIsBounded(t *testing.T) {
	b := tree(t, 12, 2)
	want := keys(t, b.List(t.Context(), ""))
	for _, conc := range []int{1, 4} {
		// Release the gate one listing at a time, from outside, until the
		// walk is over: a walk that ran more than conc at once shows in
		// peak.
		g := &gated{Backend: b, gate: make(chan struct{})}
		type result struct {
			keys []string
			err  error
		}
		done := make(chan result)
		go func() {
			var r result
			for e, err := range walk.List(t.Context(), g, "", walk.Options{Concurrency: conc}) {
				if r.err = err; err != nil {
					break
				}
				r.keys = append(r.keys, e.Key)
			}
			done <- r
		}()
		var r result
	feed:
		for {
			select {
			case g.gate <- struct{}{}:
			case r = <-done:
				break feed
			}
		}
		if r.err != nil {
			t.Fatalf("concurrency %d: %v", conc, r.err)
		}
		got := r.keys
		if !slices.Equal(got, want) {
			t.Fatalf("concurrency %d: walk gave %q, want %q", conc, got, want)
		}
		// The root, 12 "dNN/" and 12 "dNN/sub/".
		if n := g.calls.Load(); n != 25 {
			t.Errorf("concurrency %d: %d ListDir calls, want 25", conc, n)
		}
		if g.peak > conc {
			t.Errorf("concurrency %d: %d ListDir calls in flight at once", conc, g.peak)
		}
	}
}

func TestListingErrorEndsTheWalk(t *testing.T) {
	b := tree(t, 6, 3)
	g := &gated{Backend: b, failAt: "d03/sub/"}
	var got []string
	var last error
	calls := 0
	for e, err := range walk.List(t.Context(), g, "", walk.Options{Concurrency: 3}) {
		calls++
		if err != nil {
			last = err
			continue
		}
		if last != nil {
			t.Fatalf("entry %q yielded after the error", e.Key)
		}
		got = append(got, e.Key)
	}
	if !errors.Is(last, errBroken) {
		t.Fatalf("walk ended with %v, want %v", last, errBroken)
	}
	if calls != len(got)+1 {
		t.Fatalf("%d yields for %d entries: the error must be yielded once", calls, len(got))
	}
	// Nothing from the broken directory or after it.
	for _, k := range got {
		if k >= "d03/sub/" {
			t.Fatalf("yielded %q, at or after the broken directory", k)
		}
	}
}

func TestStopReleasesWorkers(t *testing.T) {
	b := tree(t, 8, 2)
	g := &gated{Backend: b}
	for range walk.List(t.Context(), g, "", walk.Options{Concurrency: 4}) {
		break
	}
	// List returns only after its workers stopped: none is in flight.
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inFlight != 0 {
		t.Fatalf("%d ListDir calls still running after the consumer stopped", g.inFlight)
	}
}
