// Package meta is a TTL cache for metadata (lookups, listings): positive
// entries, negative entries ("does not exist"), a bound on the number of
// entries, and deduplicated loads. The clock is injected, so expiry is
// testable without sleeping.
package meta

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryio/ferry/cache/internal/flight"
)

// ErrNotExist is what Do returns for a negative entry stored by
// PutNegative (an entry cached by Do returns the load's own error instead).
var ErrNotExist = errors.New("metadata cache: does not exist")

// Cache maps string keys to values of type V, each kept for the cache's
// TTL. Safe for concurrent use.
//
// INVARIANT (whenever mu is not held):
//   - len(entries) == order.Len(), and entries[e.key] is the element holding
//     e for every entry e in order.
//   - order runs from the least recently written entry to the most (so,
//     with a clock that does not go back, expiries never decrease along it).
//   - if max > 0, len(entries) <= max.
//   - if ttl == 0, entries is empty.
type Cache[V any] struct {
	ttl     time.Duration
	max     int
	now     func() time.Time
	flights flight.Group[V]

	mu      sync.Mutex
	entries map[string]*list.Element // GUARDED_BY(mu); of *entry[V]
	order   *list.List               // GUARDED_BY(mu); front = oldest write
	// gen counts invalidations: a load that began before one does not
	// store its result, which may predate the change that was invalidated.
	gen uint64 // GUARDED_BY(mu)
}

type entry[V any] struct {
	key      string
	v        V
	negative bool
	err      error     // for negative entries: what Do returns
	expires  time.Time // zero: never
}

// New returns a cache keeping entries for ttl (ttl < 0: until evicted or
// invalidated; ttl == 0: nothing is cached, Do only deduplicates concurrent
// loads), holding at most maxEntries (<= 0: no bound), the oldest written
// evicted first. now is the clock (nil: time.Now).
func New[V any](ttl time.Duration, maxEntries int, now func() time.Time) *Cache[V] {
	if now == nil {
		now = time.Now
	}
	return &Cache[V]{
		ttl:     ttl,
		max:     maxEntries,
		now:     now,
		entries: make(map[string]*list.Element),
		order:   list.New(),
	}
}

// Get returns the entry for key if it has not expired: ok reports whether
// there is one, negative whether it says "does not exist" (v is then the
// zero V).
func (c *Cache[V]) Get(key string) (v V, negative bool, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lookupLocked(key)
	if !ok {
		return v, false, false
	}
	return e.v, e.negative, true
}

// Put caches v for key, replacing any entry (positive or negative). A
// concurrent Do that loaded key may overwrite it when its load returns.
func (c *Cache[V]) Put(key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.storeLocked(&entry[V]{key: key, v: v})
}

// PutNegative caches "key does not exist", with the same TTL as values.
func (c *Cache[V]) PutNegative(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.storeLocked(&entry[V]{key: key, negative: true, err: ErrNotExist})
}

// Invalidate forgets key. A Do whose load for any key began before the
// call does not cache its result.
func (c *Cache[V]) Invalidate(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if el, ok := c.entries[key]; ok {
		c.removeLocked(el)
	}
}

// InvalidatePrefix forgets every key starting with prefix ("" forgets all).
// A Do whose load began before the call does not cache its result. It
// takes time linear in the number of entries.
func (c *Cache[V]) InvalidatePrefix(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for key, el := range c.entries {
		if strings.HasPrefix(key, prefix) {
			c.removeLocked(el)
		}
	}
}

// Len returns the number of entries held, expired ones not yet dropped
// included.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Do returns the cached value for key, or loads it: concurrent Do calls
// for one key share a single load. A successful load is cached; a load
// error for which isNotExist (may be nil) reports true is cached as a
// negative entry and returned, then and on later hits; any other error is
// returned to the callers sharing the load and not cached. A cached
// negative entry returns the error that created it (ErrNotExist if it came
// from PutNegative) and the zero V.
//
// load runs with a context carrying ctx's values but not its cancellation:
// if ctx is done first Do returns ctx.Err() at once, and the load goes on
// (and is cached) for the other callers, or is cancelled when none is left.
func (c *Cache[V]) Do(ctx context.Context, key string, load func(ctx context.Context) (V, error), isNotExist func(error) bool) (V, error) {
	e, gen := c.lookup(key)
	if e != nil {
		return e.result()
	}
	return c.flights.Do(ctx, flightKey(gen, key), c.loader(key, gen, load, isNotExist))
}

// flightKey names the load of key begun at invalidation generation gen:
// loads begun before an invalidation are not joined by callers after it.
func flightKey(gen uint64, key string) string {
	return strconv.FormatUint(gen, 10) + "\x00" + key
}

// loader is Do's shared load of key, begun in generation gen. It looks
// the key up again first: a load that finished between Do's lookup and
// this call has cached its result (and an entry found now was stored
// after any invalidation), which is returned with no second load.
func (c *Cache[V]) loader(key string, gen uint64, load func(ctx context.Context) (V, error), isNotExist func(error) bool) func(context.Context) (V, error) {
	return func(ctx context.Context) (V, error) {
		if e, _ := c.lookup(key); e != nil {
			return e.result()
		}
		v, err := load(ctx)
		switch {
		case err == nil:
			c.storeIfGen(gen, &entry[V]{key: key, v: v})
		case isNotExist != nil && isNotExist(err):
			c.storeIfGen(gen, &entry[V]{key: key, negative: true, err: err})
		}
		return v, err
	}
}

func (c *Cache[V]) storeIfGen(gen uint64, e *entry[V]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.storeLocked(e)
	}
}

// lookup returns key's live entry (nil if none) and the current
// generation.
func (c *Cache[V]) lookup(key string) (*entry[V], uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, _ := c.lookupLocked(key)
	return e, c.gen
}

// result is what Do returns for the entry.
func (e *entry[V]) result() (V, error) {
	if e.negative {
		var zero V
		return zero, e.err
	}
	return e.v, nil
}

// lookupLocked returns key's live entry, dropping it if expired.
func (c *Cache[V]) lookupLocked(key string) (*entry[V], bool) {
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*entry[V])
	if !e.expires.IsZero() && !c.now().Before(e.expires) {
		c.removeLocked(el)
		return nil, false
	}
	return e, true
}

// storeLocked sets e's expiry, stores it as the newest entry and evicts
// down to the bound, oldest first.
func (c *Cache[V]) storeLocked(e *entry[V]) {
	if c.ttl == 0 {
		return
	}
	now := c.now()
	if c.ttl > 0 {
		e.expires = now.Add(c.ttl)
	}
	if el, ok := c.entries[e.key]; ok {
		c.removeLocked(el)
	}
	c.entries[e.key] = c.order.PushBack(e)
	for c.max > 0 && len(c.entries) > c.max {
		c.removeLocked(c.order.Front())
	}
	// With one TTL the oldest write expires first: drop expired entries
	// from the front so they do not linger until the bound pushes them out.
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		x := el.Value.(*entry[V])
		if x.expires.IsZero() || now.Before(x.expires) {
			break
		}
		c.removeLocked(el)
	}
}

func (c *Cache[V]) removeLocked(el *list.Element) {
	delete(c.entries, el.Value.(*entry[V]).key)
	c.order.Remove(el)
}

// checkInvariants returns the first violated INVARIANT, for tests.
func (c *Cache[V]) checkInvariants() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) != c.order.Len() {
		return fmt.Errorf("%d entries, order holds %d", len(c.entries), c.order.Len())
	}
	var prev time.Time
	for el := c.order.Front(); el != nil; el = el.Next() {
		e := el.Value.(*entry[V])
		if c.entries[e.key] != el {
			return fmt.Errorf("entry %q in order but not indexed", e.key)
		}
		if e.expires.Before(prev) {
			return fmt.Errorf("entry %q expires before an older write", e.key)
		}
		prev = e.expires
	}
	if c.max > 0 && len(c.entries) > c.max {
		return fmt.Errorf("%d entries over bound %d", len(c.entries), c.max)
	}
	if c.ttl == 0 && len(c.entries) != 0 {
		return fmt.Errorf("%d entries with caching off", len(c.entries))
	}
	return nil
}
