package mount

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
)

// Listing prefetch. Opening a directory lists, in the background, those of
// its subdirectories that have no cached listing, so that a walk down the
// tree (ls -R, find, du, a data loader's scan) finds each directory listed
// when it gets there instead of waiting for one LIST round trip per
// directory. It is bounded three ways: at most prefetchDirs subdirectories
// per opened directory, prefetchLists LISTs at once per opened directory
// and prefetchBatches opened directories at a time (others prefetch
// nothing), and each prefetch gives up after prefetchEntries entries (a
// large directory is listed when it is opened itself, not ahead).
const (
	prefetchDirs    = 256
	prefetchLists   = 8
	prefetchBatches = 2
	prefetchEntries = 5000
)

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

// prefetchListings lists in the background the subdirectories of dir (as
// l shows them) that have no cached listing.
func (f *filesystem) prefetchListings(dir string, l *listing) {
	if f.opts.MetadataTTL == 0 {
		return // nothing listed ahead would be kept
	}
	var todo []string
	for _, c := range l.children {
		if len(todo) == prefetchDirs {
			break
		}
		if !c.dir {
			continue
		}
		if _, _, ok := f.listings.Get(dir + c.name + "/"); !ok {
			todo = append(todo, dir+c.name+"/")
		}
	}
	if len(todo) == 0 || !f.prefetchBatches.TryAcquire(1) {
		return
	}
	go func() {
		defer f.prefetchBatches.Release(1)
		var g errgroup.Group
		g.SetLimit(prefetchLists)
		for _, sub := range todo {
			if f.closing.Err() != nil {
				break
			}
			g.Go(func() error {
				_, err := f.listings.Do(f.closing, sub, f.loadListing(sub, prefetchEntries), nil)
				if err != nil && !errors.Is(err, errTooLarge) && f.closing.Err() == nil {
					f.log.Debug("mount: listing ahead failed", "key", sub, "cause", redact(err.Error()))
				}
				return nil
			})
		}
		_ = g.Wait()
	}()
}
