package mount

import (
	"context"
	"fmt"
	"io"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/cache/block"
	"github.com/ferryio/ferry/fs/objread"
)

// Getting blocks: from the blocks just fetched, from a run fetching them,
// from the block cache, or from the store through the cache. Every GET is
// pinned to the version the reader opened (IfVersion) and holds units of
// the fetch semaphore, one per block it has yet to fill.

// blockKey names block i of the object o in the block cache; vkey is
// o.versionKey.
func (f *filesystem) blockKey(o object, vkey string, i int64) block.Key {
	return block.Key{Object: f.store + "/" + o.key, Version: vkey, Index: i}
}

// getBlock returns block k of the object r reads: just fetched, from the
// block cache, or fetched through it. streamed says the block belongs to a
// sequential stream (readahead), which the kernel's page cache holds once
// read: the block cache then keeps it on disk only (block.GetStreamed).
func (f *filesystem) getBlock(ctx context.Context, r *objread.Object, k block.Key, streamed bool) ([]byte, error) {
	return f.getBlockWith(ctx, k, streamed, func(ctx context.Context) ([]byte, error) {
		// Claimed like a run's blocks, so that a run planned meanwhile
		// stops before it (see inflight).
		if f.runs.claim([]block.Key{k}) == 0 {
			return f.joinRun(ctx, r, k)
		}
		b, err := f.fetchBlock(ctx, r, k.Index)
		f.runs.settle([]block.Key{k}, [][]byte{b}, err) // getBlockWith puts it in recent
		return b, err
	})
}

// joinRun returns block k from the run that has claimed it, or, when that
// run failed or has just ended, from recent or a fetch of its own.
func (f *filesystem) joinRun(ctx context.Context, r *objread.Object, k block.Key) ([]byte, error) {
	if b, ok, err := f.runs.wait(ctx, k); ok || err != nil {
		return b, err
	}
	if b, ok := f.recent.get(k); ok {
		return b, nil
	}
	return f.fetchBlock(ctx, r, k.Index)
}

// getBlockWith is getBlock fetching with fetch.
func (f *filesystem) getBlockWith(ctx context.Context, k block.Key, streamed bool, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	if b, ok := f.recent.get(k); ok {
		return b, nil
	}
	if b, ok, err := f.runs.wait(ctx, k); ok || err != nil {
		return b, err
	}
	if !streamed {
		return f.cache.Get(ctx, k, func(ctx context.Context) ([]byte, error) {
			b, err := fetch(ctx)
			if err == nil {
				f.recent.put(k, b)
			}
			return b, err
		})
	}
	// A streamed block, fetched or read from disk, is kept in recent
	// only: the block cache keeps it on disk, and a late request of the
	// kernel for it finds it here rather than reading the disk again.
	b, err := f.cache.GetStreamed(ctx, k, fetch)
	if err == nil {
		f.recent.put(k, b)
	}
	return b, err
}

// fetchRun reads blocks keys[0].Index, keys[0].Index+1, ... of the object
// r pins with one ranged GET, pinned to its version, and returns the first
// as soon as its bytes have arrived. The run stops before a block another
// run is fetching; readers of its blocks wait for it (see inflight).
// A goroutine goes on reading them, each handed, as soon as its bytes have
// arrived, to recent, to the readers waiting for it and to the block
// cache (as streamed: readahead is what fetches runs), so that a reader
// never waits for more of the GET than its own block.
//
// ctx bounds the GET until the first block is returned, rest from then
// on; a run ended early hands its readers the error (they then fetch
// their block themselves). It holds one unit of the fetch semaphore per
// block not yet read. It does not retry: callers fetch a failed first
// block again with fetchBlock (which retries).
func (f *filesystem) fetchRun(ctx, rest context.Context, r *objread.Object, keys []block.Key) ([]byte, error) {
	keys = keys[:min(len(keys), f.opts.Concurrency)]
	// The first block is claimed too, so that a run planned meanwhile by
	// another reader stops before it; if such a run already holds it, its
	// bytes come from there.
	if f.runs.claim(keys[:1]) == 0 {
		return f.joinRun(ctx, r, keys[0])
	}
	keys = keys[:1+f.runs.claim(keys[1:])]
	n := int64(len(keys))
	if err := f.fetches.Acquire(ctx, n); err != nil {
		f.runs.settle(keys, nil, err)
		return nil, err
	}
	// The GET outlives ctx once the first block is out: gctx follows ctx
	// until then, and rest afterwards.
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	detach := context.AfterFunc(ctx, cancel)
	body, off, end, err := f.openRun(gctx, r, keys[0].Index, n)
	var first []byte
	if err == nil {
		first, err = f.readRunBlock(body, r, off, end)
		if err != nil {
			body.Close()
		}
	}
	if err != nil {
		detach()
		cancel()
		f.fetches.Release(n)
		f.runs.settle(keys, nil, err)
		return nil, err
	}
	f.runs.settle(keys[:1], [][]byte{first}, nil) // getBlockWith puts it in recent
	f.fetches.Release(1)
	detach()
	stop := context.AfterFunc(rest, cancel)
	go func() {
		defer cancel()
		defer stop()
		defer body.Close()
		o := off + int64(len(first))
		for i, k := range keys[1:] {
			b, err := f.readRunBlock(body, r, o, end)
			if err != nil {
				f.fetches.Release(int64(len(keys) - 1 - i))
				f.runs.settle(keys[1+i:], nil, err)
				return
			}
			o += int64(len(b))
			f.recent.put(k, b)
			f.runs.settle(keys[1+i:2+i], [][]byte{b}, nil)
			f.fetches.Release(1)
			_ = f.cache.AddStreamed(k, b)
		}
	}()
	return first, nil
}

// openRun starts the GET of n blocks from block first of the object r
// pins, and returns its body and the byte range [off, end) it holds.
func (f *filesystem) openRun(ctx context.Context, r *objread.Object, first, n int64) (io.ReadCloser, int64, int64, error) {
	info, bs := r.Info(), f.opts.BlockSize
	off := first * bs
	end := min(off+n*bs, info.Size)
	body, got, err := f.b.GetRange(ctx, info.Key, off, end-off, backends.ReadOptions{IfVersion: info.Version})
	if err != nil {
		return nil, 0, 0, err
	}
	if got.Size != info.Size {
		body.Close()
		return nil, 0, 0, backends.Errorf("get", f.store, info.Key, backends.ErrPrecondition,
			fmt.Errorf("object is now %d bytes, pinned at %d", got.Size, info.Size))
	}
	return body, off, end, nil
}

// readRunBlock reads the block at byte off of a run's body ending at end.
func (f *filesystem) readRunBlock(body io.Reader, r *objread.Object, off, end int64) ([]byte, error) {
	b := make([]byte, min(f.opts.BlockSize, end-off))
	if _, err := io.ReadFull(body, b); err != nil {
		return nil, fmt.Errorf("reading block %d of %q: %w", off/f.opts.BlockSize, r.Info().Key, err)
	}
	return b, nil
}

// fetchBlock reads block i of the pinned object read by r, holding one
// unit of the fetch semaphore, so that at most Concurrency block buffers
// are being filled at once.
func (f *filesystem) fetchBlock(ctx context.Context, r *objread.Object, i int64) ([]byte, error) {
	if err := f.fetches.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	defer f.fetches.Release(1)
	off := i * f.opts.BlockSize
	n := min(f.opts.BlockSize, r.Size()-off)
	if n <= 0 {
		return nil, fmt.Errorf("block %d of %q: beyond its %d bytes", i, r.Info().Key, r.Size())
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(ctx, buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}
