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
// the fetch semaphore, one per block it fills.

// blockKey names block i of the object o in the block cache; vkey is
// o.versionKey.
func (f *filesystem) blockKey(o object, vkey string, i int64) block.Key {
	return block.Key{Object: f.store + "/" + o.key, Version: vkey, Index: i}
}

// getBlock returns block k of the object r reads: just fetched, from the
// block cache, or fetched through it.
func (f *filesystem) getBlock(ctx context.Context, r *objread.Object, k block.Key) ([]byte, error) {
	return f.getBlockWith(ctx, k, func(ctx context.Context) ([]byte, error) {
		return f.fetchBlock(ctx, r, k.Index)
	})
}

// getBlockWith is getBlock fetching with fetch.
func (f *filesystem) getBlockWith(ctx context.Context, k block.Key, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	if b, ok := f.recent.get(k); ok {
		return b, nil
	}
	if b, ok, err := f.runs.wait(ctx, k); ok || err != nil {
		return b, err
	}
	return f.cache.Get(ctx, k, func(ctx context.Context) ([]byte, error) {
		b, err := fetch(ctx)
		if err == nil {
			f.recent.put(k, b)
		}
		return b, err
	})
}

// fetchRun reads blocks keys[0].Index, keys[0].Index+1, ... of the object
// r pins with one ranged GET, pinned to its version, holding one unit of
// the fetch semaphore per block. The run stops before a block another run
// is fetching; readers of its other blocks wait for it (see inflight). It
// does not retry: callers fetch a failed run again block by block
// (fetchBlock retries).
func (f *filesystem) fetchRun(ctx context.Context, r *objread.Object, keys []block.Key) ([][]byte, error) {
	keys = keys[:min(len(keys), f.opts.Concurrency)]
	n := 1 + f.runs.claim(keys[1:])
	keys = keys[:n]
	blocks, err := f.getRun(ctx, r, keys[0].Index, n)
	for i, b := range blocks {
		f.recent.put(keys[i], b)
	}
	f.runs.settle(keys[1:], blocks[min(1, len(blocks)):], err)
	return blocks, err
}

// getRun is fetchRun's GET of n blocks from block first.
func (f *filesystem) getRun(ctx context.Context, r *objread.Object, first int64, n int) ([][]byte, error) {
	if err := f.fetches.Acquire(ctx, int64(n)); err != nil {
		return nil, err
	}
	defer f.fetches.Release(int64(n))
	info, bs := r.Info(), f.opts.BlockSize
	off := first * bs
	end := min(off+int64(n)*bs, info.Size)
	body, got, err := f.b.GetRange(ctx, info.Key, off, end-off, backends.ReadOptions{IfVersion: info.Version})
	if err != nil {
		return nil, err
	}
	defer body.Close()
	if got.Size != info.Size {
		return nil, backends.Errorf("get", f.store, info.Key, backends.ErrPrecondition,
			fmt.Errorf("object is now %d bytes, pinned at %d", got.Size, info.Size))
	}
	blocks := make([][]byte, 0, n)
	for o := off; o < end; o += bs {
		b := make([]byte, min(bs, end-o))
		if _, err := io.ReadFull(body, b); err != nil {
			return nil, fmt.Errorf("reading blocks %d-%d of %q: %w", first, first+int64(n)-1, info.Key, err)
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
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
