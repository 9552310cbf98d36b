package mount

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/cache/block"
	"github.com/ferryio/ferry/cache/meta"
	"github.com/ferryio/ferry/fs/namespace"
)

// Bounds of the metadata caches: directory listings (each as large as its
// directory: about 150 bytes per entry) and single lookups (about 200
// bytes each).
const (
	maxListings = 1024
	maxLookups  = 100_000
)

// filesystem is the state shared by every node and handle of one mount.
// Its fields are set by newFilesystem and not changed afterwards; the
// caches and semaphores are safe for concurrent use.
type filesystem struct {
	b         backends.Backend
	store     string // b.String(), the namespace of block cache keys
	cache     *block.Cache
	opts      Options // with defaults applied
	log       *slog.Logger
	metrics   *Metrics
	now       func() time.Time
	started   time.Time // shown as the directories' times
	listings  *meta.Cache[*listing]
	lookups   *meta.Cache[lookup]
	fetches   *semaphore.Weighted // one unit per block GET in flight
	readahead *semaphore.Weighted // bytes of blocks read ahead and held
	ahead     listingsAhead       // directories to list ahead (see prefetchListings)
	recent    *recent             // blocks just fetched
	runs      inflight            // blocks being fetched by runs
	scans     sync.WaitGroup      // small-file readaheads running (see scan.go); tests wait on it
	// closing is cancelled when the mount goes away, stopping every
	// prefetch.
	closing context.Context
	// w is the write state of a read-write mount; nil when read-only.
	w *writer
}

// lookup is a name resolved without its directory's listing.
type lookup struct {
	c      child
	loaded time.Time
}

func newFilesystem(closing context.Context, b backends.Backend, opts Options) *filesystem {
	f := &filesystem{
		b:         b,
		store:     b.String(),
		cache:     opts.Cache,
		opts:      opts,
		log:       opts.Logger,
		metrics:   opts.Metrics,
		now:       opts.Now,
		started:   opts.Now(),
		listings:  meta.New[*listing](opts.MetadataTTL, maxListings, opts.Now),
		lookups:   meta.New[lookup](opts.MetadataTTL, maxLookups, opts.Now),
		fetches:   semaphore.NewWeighted(int64(opts.Concurrency)),
		readahead: semaphore.NewWeighted(opts.ReadaheadMemory),
		recent:    newRecent(opts.BlockSize),
		closing:   closing,
	}
	return f
}

// errno maps err through errnoFor (the one place) and counts it.
func (f *filesystem) errno(ctx context.Context, op, key string, err error) syscall.Errno {
	e := errnoFor(ctx, f.log, op, key, err)
	if e != 0 {
		f.metrics.failed(e)
	}
	return e
}

// hidden logs a key that the mount does not show.
func (f *filesystem) hidden(key string, reason error) {
	f.log.Warn("mount: key hidden: it cannot be shown as a file", slog.String("key", key), slog.String("reason", reason.Error()))
}

// lookup resolves name in directory dir. A cached listing of dir answers
// without a request (also "does not exist"); otherwise the name is probed
// and the answer cached, negative ones included. loaded is when the answer
// was read from the store.
func (f *filesystem) lookup(ctx context.Context, dir, name string) (c child, loaded time.Time, err error) {
	key := dir + name
	if l, _, ok := f.listings.Get(dir); ok {
		c, found := l.find(name)
		if !found {
			return child{}, time.Time{}, notExist(key)
		}
		return c, l.loaded, nil
	}
	r, err := f.lookups.Do(ctx, key, func(ctx context.Context) (lookup, error) {
		c, err := f.probe(ctx, dir, name)
		return lookup{c: c, loaded: f.now()}, err
	}, isNotExist)
	return r.c, r.loaded, err
}

func notExist(key string) error {
	return fmt.Errorf("%w: %q", backends.ErrNotExist, key)
}

func isNotExist(err error) bool { return errors.Is(err, backends.ErrNotExist) }

// probe finds what dir+name is with two requests at once: a Stat of the
// key (a file) and the first entry of ListDir(key+"/") (a directory,
// implicit or marked). A directory wins over a file of the same name, as in
// listings.
func (f *filesystem) probe(ctx context.Context, dir, name string) (child, error) {
	key := dir + name
	if _, err := namespace.PathFor(key); err != nil {
		return child{}, fmt.Errorf("%w: %w", backends.ErrNotExist, err)
	}
	var (
		info  backends.ObjectInfo
		file  bool
		isDir bool
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		info, err = f.b.Stat(gctx, key)
		switch {
		case err == nil:
			file = true
		case errors.Is(err, backends.ErrNotExist), errors.Is(err, backends.ErrInvalidKey):
			err = nil
		}
		return err
	})
	g.Go(func() error {
		for _, err := range f.b.ListDir(gctx, key+"/") {
			if err != nil {
				return err
			}
			isDir = true
			break
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return child{}, err
	}
	switch {
	case isDir:
		if file {
			f.hidden(key, conflict(key, key+"/"))
		}
		return child{name: name, dir: true}, nil
	case file:
		return child{name: name, obj: objectOf(info)}, nil
	}
	return child{}, notExist(key)
}

// forever stands for "no expiry" in kernel timeouts.
const forever = 365 * 24 * time.Hour

// timeout is how much longer an answer read from the store at loaded may
// be cached by the kernel: what is left of the metadata TTL, so that the
// kernel asks again when the mount's own cache expires.
func (f *filesystem) timeout(loaded time.Time) time.Duration {
	ttl := f.opts.MetadataTTL
	switch {
	case ttl < 0:
		return forever
	case ttl == 0:
		return 0
	}
	left := ttl - f.now().Sub(loaded)
	return max(left, time.Millisecond)
}

// kernelTTL is the whole metadata TTL as a kernel timeout.
func (f *filesystem) kernelTTL() time.Duration {
	if f.opts.MetadataTTL < 0 {
		return forever
	}
	return f.opts.MetadataTTL
}

// fileAttr fills out with the attributes of a file holding o.
func (f *filesystem) fileAttr(o object, out *fuse.Attr) {
	out.Mode = syscall.S_IFREG | f.opts.FileMode
	out.Size = uint64(o.size)
	out.Blocks = (uint64(o.size) + 511) / 512
	out.Blksize = uint32(min(f.opts.BlockSize, 1<<20))
	out.Nlink = 1
	out.Uid, out.Gid = f.opts.UID, f.opts.GID
	t := o.mtime
	if t.IsZero() {
		t = f.started
	}
	out.SetTimes(&t, &t, &t)
}

// dirAttr fills out with the attributes of a directory.
func (f *filesystem) dirAttr(out *fuse.Attr) {
	out.Mode = syscall.S_IFDIR | f.opts.DirMode
	out.Nlink = 2
	out.Blksize = 4096
	out.Uid, out.Gid = f.opts.UID, f.opts.GID
	out.SetTimes(&f.started, &f.started, &f.started)
}
