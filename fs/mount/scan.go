package mount

import (
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/fs/objread"
)

// Small-file readahead. A reader that opens the files of a directory one
// after the other in name order (cat dir/*, a data loader walking a
// shard) pays one GET round trip per file. When two files are opened in
// listing order, the next scanAhead files of the listing that fit in one
// block are fetched in the background, scanLists at a time, into the block
// cache, where their opens find them. Opens out of order end the run.
const (
	scanAhead = 16
	scanLists = 8
)

// scan is a directory's sequential-open detector.
type scan struct {
	l     *listing // the listing the indexes below refer to
	next  int      // index of the child after the one opened last
	run   int      // files opened in listing order in a row
	ahead int      // children before this index have been requested
}

// opened tells d that its child name was opened, and reads ahead the
// files after it when the opens follow the listing.
func (d *dirNode) opened(name string) {
	f := d.fsys
	l, _, ok := f.listings.Get(d.key)
	if !ok {
		return // without a listing there is no order to follow
	}
	i, found := slices.BinarySearchFunc(l.children, name, func(c child, n string) int { return strings.Compare(c.name, n) })
	if !found {
		return
	}
	d.mu.Lock()
	s := &d.scan
	if s.l != l {
		*s = scan{l: l}
	}
	if i == s.next && s.run > 0 {
		s.run++
	} else {
		s.run = 1
	}
	s.next = i + 1
	var todo []child
	if s.run >= 2 {
		from := max(s.ahead, i+1)
		to := min(i+1+scanAhead, len(l.children))
		for _, c := range l.children[from:max(from, to)] {
			if !c.dir && c.obj.size > 0 && c.obj.size <= f.opts.BlockSize {
				todo = append(todo, c)
			}
		}
		s.ahead = max(s.ahead, to)
	}
	d.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	f.scans.Add(1)
	go func() {
		defer f.scans.Done()
		var g errgroup.Group
		g.SetLimit(scanLists)
		for _, c := range todo {
			g.Go(func() error {
				obj := objread.Open(f.b, c.obj.info(), objread.Options{Logger: f.log})
				_, err := f.getBlock(f.closing, obj, f.blockKey(c.obj, c.obj.versionKey(f.opts.BlockSize), 0), false)
				if err != nil && f.closing.Err() == nil {
					f.log.Debug("mount: reading a file ahead failed", "key", c.obj.key, "cause", redact(err.Error()))
				}
				return nil
			})
		}
		_ = g.Wait()
	}()
}
