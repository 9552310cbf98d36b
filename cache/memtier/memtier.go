// Package memtier is the memory tier of the block cache: a ristretto cache
// of byte slices bounded by their total capacity.
//
// Memory bound. The tier charges each block cap(block) bytes plus
// ristretto's own per-item cost (the size of its store item, ~70 bytes), and
// ristretto evicts to keep the sum within maxBytes. Not charged, so on top of
// the bound:
//   - bookkeeping not in the per-item cost: map and policy entries, about
//     150 bytes per block held;
//   - fixed at New: the admission counters (about 3 bytes per counter, 10
//     counters per block-sized slot of maxBytes, at least 1024) and
//     ristretto's buffers (~300 KiB, mostly its 32Ki-entry set channel);
//   - blocks queued in ristretto's set buffer, not yet admitted or rejected
//     (drained continuously by ristretto's goroutine; Wait drains it), and for
//     an instant the block being admitted before its victims are dropped;
//   - blocks evicted from the tier that callers still hold: the tier never
//     reuses or frees a slice, so an evicted block lives on until its last
//     holder lets go.
//
// For 4 MiB blocks the bookkeeping is well under 0.1% of the bound.
package memtier

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/ristretto/v2"
)

// Tier is a memory cache of blocks keyed by string. Safe for concurrent use.
// Sets are asynchronous and may be dropped (ristretto's admission policy or a
// full buffer): a Put is a hint, and a Get right after it may miss.
type Tier struct {
	c *ristretto.Cache[string, []byte]
}

// New returns a Tier holding at most maxBytes of blocks (see the package
// doc for what the bound covers). blockSize is the typical block size, used
// to size the admission counters. onEvict, if set, is called with the size
// of each block evicted to make room; it runs on ristretto's goroutine and
// must not block.
func New(maxBytes, blockSize int64, onEvict func(size int64)) (*Tier, error) {
	if maxBytes <= 0 || blockSize <= 0 {
		return nil, fmt.Errorf("memory cache: maxBytes (%d) and blockSize (%d) must be positive", maxBytes, blockSize)
	}
	counters := 10 * (maxBytes/blockSize + 1)
	cfg := &ristretto.Config[string, []byte]{
		NumCounters: max(counters, 1024),
		MaxCost:     maxBytes,
		BufferItems: 64,
	}
	if onEvict != nil {
		cfg.OnEvict = func(it *ristretto.Item[[]byte]) { onEvict(int64(len(it.Value))) }
	}
	c, err := ristretto.NewCache(cfg)
	if err != nil {
		return nil, errors.Join(errors.New("memory cache"), err)
	}
	return &Tier{c: c}, nil
}

// Get returns the block stored under key. The slice is shared with the tier
// and with every other caller: it must not be modified. It stays valid after
// eviction.
func (t *Tier) Get(key string) ([]byte, bool) {
	return t.c.Get(key)
}

// Put offers b to the tier under key. The tier takes ownership of b: neither
// the caller nor anyone it hands b to may modify it afterwards. Put reports
// whether the block was queued for admission (it may still be rejected).
func (t *Tier) Put(key string, b []byte) bool {
	return t.c.Set(key, b, int64(cap(b)))
}

// Used returns the cost currently charged (see the package doc); it lags
// Puts still queued.
func (t *Tier) Used() int64 {
	return t.c.MaxCost() - t.c.RemainingCost()
}

// Wait blocks until every Put made before it has been admitted or rejected.
func (t *Tier) Wait() {
	t.c.Wait()
}

// Close drops every block and stops ristretto's goroutines. No other method
// may be called during or after Close.
func (t *Tier) Close() {
	t.c.Close()
}
