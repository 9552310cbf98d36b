package mount

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"

	"github.com/ferryio/ferry/backends"
)

// Listing prefetch. A walk down the tree (ls -R, find, du, a glob, a data
// loader's scan) opens directories depth first, in listing order. When a
// directory is opened, the mount queues for listing in the background,
// into the metadata cache, the directories such a walk opens next that
// have no cached listing: the first prefetchAhead subdirectories of the
// directory, then the prefetchAhead subdirectories of its parent that
// follow it. prefetchLists goroutines list the queue in order, so a walk
// finds each directory listed when it gets there instead of waiting for
// one LIST round trip per directory, with up to prefetchLists LISTs in
// flight even while the walker waits; and a look at a few directories (ls,
// cat dir-00[0-9]/*) costs at most prefetchAhead LISTs beyond those it
// opens, not one per subdirectory: LISTs the server would serve for
// nothing, competing with the reads. The queue keeps the last
// prefetchQueue directories asked for. Each listing ahead gives up after
// prefetchEntries entries (a large directory is listed when it is opened
// itself).
const (
	prefetchAhead   = 16
	prefetchLists   = 8
	prefetchQueue   = 64
	prefetchEntries = 5000
)

// listingsAhead is the queue of directories to list ahead, and the
// goroutines listing them.
//
// INVARIANT (whenever mu is not held): queued holds exactly the entries
// of queue and the directories being listed; len(queue) <=
// prefetchQueue; workers <= prefetchLists, and workers > 0 if queue is
// not empty; wg counts the workers.
type listingsAhead struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	queue   []string        // GUARDED_BY(mu); oldest first
	queued  map[string]bool // GUARDED_BY(mu)
	workers int             // GUARDED_BY(mu)
}

// add queues dirs not queued or being listed yet, dropping the oldest
// entries beyond prefetchQueue, and returns how many workers to start.
func (a *listingsAhead) add(dirs []string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.queued == nil {
		a.queued = map[string]bool{}
	}
	for _, d := range dirs {
		if !a.queued[d] {
			a.queued[d] = true
			a.queue = append(a.queue, d)
		}
	}
	if over := len(a.queue) - prefetchQueue; over > 0 {
		for _, d := range a.queue[:over] {
			delete(a.queued, d)
		}
		a.queue = slices.Delete(a.queue, 0, over)
	}
	n := min(prefetchLists-a.workers, len(a.queue))
	a.workers += n
	a.wg.Add(n)
	return n
}

// next takes the oldest queued directory, after forgetting done (the one
// the worker listed last, "" at first); ok is false when the queue is
// empty, and the worker must then stop.
func (a *listingsAhead) next(done string) (dir string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if done != "" {
		delete(a.queued, done)
	}
	if len(a.queue) == 0 {
		a.workers--
		a.wg.Done()
		return "", false
	}
	dir = a.queue[0]
	a.queue = a.queue[1:]
	return dir, true
}

// errTooLarge ends a prefetch of a directory with more than
// prefetchEntries entries; it is never cached.
var errTooLarge = errors.New("directory too large to list ahead")

// listing returns directory dir's listing ("" or a key ending in "/"),
// from the metadata cache or from one ListDir (all its pages).
func (f *filesystem) listing(ctx context.Context, dir string) (*listing, error) {
	l, err := f.listings.Do(ctx, dir, f.loadListing(dir, 0), nil)
	if errors.Is(err, errTooLarge) {
		// We joined a prefetch that gave up: list it whole.
		l, err = f.listings.Do(ctx, dir, f.loadListing(dir, 0), nil)
	}
	return l, err
}

// loadListing lists dir, failing with errTooLarge after limit entries
// (limit 0: no limit).
func (f *filesystem) loadListing(dir string, limit int) func(context.Context) (*listing, error) {
	return func(ctx context.Context) (*listing, error) {
		seq := f.b.ListDir(ctx, dir)
		if limit > 0 {
			seq = capped(seq, limit, dir)
		}
		return buildListing(dir, seq, f.now(), f.hidden)
	}
}

// capped yields the first limit entries of seq, then errTooLarge.
func capped(seq iter.Seq2[backends.Entry, error], limit int, dir string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		n := 0
		for e, err := range seq {
			if err == nil && n == limit {
				yield(backends.Entry{}, fmt.Errorf("%w: %q has over %d entries", errTooLarge, dir, limit))
				return
			}
			n++
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// prefetchListings queues for listing ahead the directories a walk opens
// after dir (whose listing is l), as far as they have no cached listing:
// dir's first prefetchAhead subdirectories, then the prefetchAhead
// subdirectories of dir's parent that follow it (if the parent's listing
// is cached).
func (f *filesystem) prefetchListings(dir string, l *listing) {
	if f.opts.MetadataTTL == 0 {
		return // nothing listed ahead would be kept
	}
	todo := subdirs(dir, l.children, prefetchAhead)
	if dir != "" {
		parent, name := splitDir(dir)
		if pl, _, ok := f.listings.Get(parent); ok {
			i, _ := slices.BinarySearchFunc(pl.children, name, func(c child, n string) int { return strings.Compare(c.name, n) })
			todo = append(todo, subdirs(parent, pl.children[min(i+1, len(pl.children)):], prefetchAhead)...)
		}
	}
	todo = slices.DeleteFunc(todo, func(sub string) bool {
		_, _, ok := f.listings.Get(sub)
		return ok
	})
	if len(todo) == 0 {
		return
	}
	for range f.ahead.add(todo) {
		go f.listAhead()
	}
}

// listAhead is a worker listing the queued directories until the queue is
// empty or the mount goes away.
func (f *filesystem) listAhead() {
	var dir string
	for {
		var ok bool
		if dir, ok = f.ahead.next(dir); !ok {
			return
		}
		if _, _, cached := f.listings.Get(dir); cached || f.closing.Err() != nil {
			continue
		}
		_, err := f.listings.Do(f.closing, dir, f.loadListing(dir, prefetchEntries), nil)
		if err != nil && !errors.Is(err, errTooLarge) && f.closing.Err() == nil {
			f.log.Debug("mount: listing ahead failed", "key", dir, "cause", redact(err.Error()))
		}
	}
}

// subdirs returns the keys of the first n directories among kids,
// children of directory dir.
func subdirs(dir string, kids []child, n int) []string {
	var keys []string
	for _, c := range kids {
		if len(keys) == n {
			break
		}
		if c.dir {
			keys = append(keys, dir+c.name+"/")
		}
	}
	return keys
}

// splitDir splits a directory key ("a/b/") into its parent's key ("a/")
// and its name ("b").
func splitDir(dir string) (parent, name string) {
	dir = strings.TrimSuffix(dir, "/")
	i := strings.LastIndexByte(dir, '/')
	return dir[:i+1], dir[i+1:]
}
