package mount

import (
	"context"
	"sync"

	"github.com/ferryio/ferry/cache/block"
)

// inflight registers every block being fetched, alone (getBlock) or as
// part of a run (one GET for several blocks, see fetchRun), which the block
// cache's own deduplication does not know about (it sees only a run's
// first block, and only from the reader that started it): a reader of such
// a block, or a run about to take it in, waits for the fetch instead of
// fetching the block again.
//
// INVARIANT (whenever mu is not held): every slot in pending is not yet
// complete, and is completed exactly once, by settle, when it leaves.
type inflight struct {
	mu      sync.Mutex
	pending map[block.Key]*slot // GUARDED_BY(mu)
}

// claim registers keys as pending, in order, stopping before the first
// that is already pending; it returns how many it claimed.
func (r *inflight) claim(keys []block.Key) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[block.Key]*slot{}
	}
	for i, k := range keys {
		if _, ok := r.pending[k]; ok {
			return i
		}
		r.pending[k] = newSlot()
	}
	return len(keys)
}

// settle completes the claimed keys, with blocks (one per key) or err,
// and unregisters them.
func (r *inflight) settle(keys []block.Key, blocks [][]byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, k := range keys {
		s := r.pending[k]
		delete(r.pending, k)
		if err == nil && i < len(blocks) {
			s.complete(blocks[i], nil)
		} else {
			s.complete(nil, err)
		}
	}
}

// wait returns block k if a run is fetching it: ok is false when none is,
// or the run failed (the caller fetches the block itself).
func (r *inflight) wait(ctx context.Context, k block.Key) (b []byte, ok bool, err error) {
	r.mu.Lock()
	s := r.pending[k]
	r.mu.Unlock()
	if s == nil {
		return nil, false, nil
	}
	select {
	case <-s.done:
		return s.data, s.err == nil, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}
