package mount

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/ferryio/ferry/cache/block"
	"github.com/ferryio/ferry/fs/objread"
)

// window is the readahead policy of one open file: it watches the reads
// and says which bytes should be fetched ahead of the reader.
//
// A read is sequential when it starts at most one block past where the
// previous reads ended, or behind it by at most one block or, once a
// run has a window, by at most the window: the kernel sends its readahead
// requests concurrently (up to 64 of 1 MiB), and they arrive out of order,
// by 5-8 MiB when a cold file streams at 600 MiB/s. Ending the run on
// such a late request would drop the blocks read ahead, and fetch them
// again (measured: 11 runs broken in two reads of 256 MiB, each block
// fetched 1.7 times). A late request changes nothing else: the window
// neither grows nor moves.
//
// A run of sequential reads starts a window of two blocks (at once for a
// run starting at offset 0, else at the second read), and the window
// doubles each time the reader enters a new block, up to max. Any other
// read ends the run: random readers fetch only the blocks they touch.
//
// A window is not safe for concurrent use.
type window struct {
	bs, max int64 // block size; the largest window, at least one block

	next  int64 // end of the furthest read of the current run
	size  int64 // bytes to keep fetched ahead of next; 0 outside a run
	block int64 // block of the last read's start
	run   int   // sequential reads in the current run
}

func newWindow(blockSize, maxBytes int64) window {
	return window{bs: blockSize, max: max(maxBytes, 0)}
}

// observe records a read of [off, end) and returns the range [from, to)
// to have fetched ahead (from == to: nothing), and whether the window
// grew.
func (w *window) observe(off, end int64) (from, to int64, grew bool) {
	if off < w.next-max(w.bs, w.size) || off > w.next+w.bs || w.max < w.bs {
		w.next, w.size, w.run, w.block = end, 0, 1, off/w.bs
		return 0, 0, false
	}
	if off < w.next-w.bs {
		// A late request of the run: it keeps the window as it is,
		// neither growing it nor counting as progress.
		return w.next, w.next + w.size, false
	}
	w.run++
	b := off / w.bs
	switch {
	case w.size == 0 && (w.run >= 2 || off == 0):
		w.size, grew = min(2*w.bs, w.max), true
	case w.size > 0 && b != w.block && w.size < w.max:
		w.size, grew = min(2*w.size, w.max), true
	}
	w.block = b
	w.next = max(w.next, end)
	if w.size == 0 {
		return 0, 0, false
	}
	return w.next, w.next + w.size, grew
}

// Readahead fetching. The blocks of a window that no slot holds yet are
// requested in runs of up to runBlocks consecutive blocks, each run one
// ranged GET (fewer and larger requests cost the store and ferry less per
// byte), streamed: each block is handed over as soon as its bytes have
// arrived, so a long run delays no reader. A run that fails is fetched
// again block by block through the retried reads.
const (
	// runBlocks is the most blocks one readahead GET fetches.
	runBlocks = 4
	// perHandlePrefetch bounds the runs one handle fetches at once.
	perHandlePrefetch = 4
)

// slot is one block read ahead, or kept for the reader. data and err are
// written once, by complete, before done is closed.
type slot struct {
	done chan struct{}
	once sync.Once
	data []byte
	err  error
	used bool // GUARDED_BY(readHandle.mu); a read took it
}

func newSlot() *slot { return &slot{done: make(chan struct{})} }

func (s *slot) complete(b []byte, err error) {
	s.once.Do(func() {
		s.data, s.err = b, err
		close(s.done)
	})
}

// plan tells the readahead window about a read of [off, end), drops the
// slots the reader has passed or that left the window, and requests the
// blocks of the window that no slot holds, in runs, as far as the
// per-handle limit and the readahead budget allow. A dropped slot's fetch
// goes on (the fetch semaphore bounds it) and its block lands in the
// cache.
func (h *readHandle) plan(off, end int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	from, to, grew := h.win.observe(off, end)
	if grew {
		h.fsys.metrics.windowGrew(to - from)
	}
	cur := off / h.bs
	// Blocks worth keeping: the reader's (and the one before, for the
	// kernel's concurrent requests that arrive out of order) and the
	// window's.
	lo, hi := cur-1, cur
	if from < to {
		hi = min((to-1)/h.bs, h.last)
	}
	for i := range h.slots {
		if i < lo || i > hi {
			h.dropLocked(i)
		}
	}
	if from >= to {
		return
	}
	var run []*slot
	first := int64(-1)
	requested := 0
	start := func() bool {
		if len(run) == 0 {
			return true
		}
		r, i := run, first
		run, first = nil, -1
		if !h.prefetch.TryGo(func() error { h.fillRun(h.ctx, i, r); return nil }) {
			for j := range r {
				h.dropLocked(i + int64(j))
			}
			return false
		}
		requested += len(r)
		return true
	}
	for i := from / h.bs; i <= hi; i++ {
		if _, ok := h.slots[i]; ok {
			if !start() {
				break
			}
			continue
		}
		if !h.fsys.readahead.TryAcquire(h.bs) {
			break
		}
		s := newSlot()
		h.slots[i] = s
		h.fsys.metrics.readaheadBytes(h.bs)
		if first < 0 {
			first = i
		}
		run = append(run, s)
		if len(run) == runBlocks && !start() {
			break
		}
	}
	// A short run at the end of the window waits for the window to move
	// on and make it a whole one, unless the reader is near it or it
	// ends the file: in the steady state the window's end moves one block
	// at a time, and would otherwise be fetched by one GET per block.
	if n := int64(len(run)); n > 0 && n < runBlocks && first > cur+runBlocks && first+n-1 < h.last {
		for j := range n {
			h.unplanLocked(first + j)
		}
		run = nil
	}
	start()
	h.fsys.metrics.prefetch(requested)
}

// unplanLocked removes slot i, not yet requested, releasing its budget.
func (h *readHandle) unplanLocked(i int64) {
	delete(h.slots, i)
	h.fsys.readahead.Release(h.bs)
	h.fsys.metrics.readaheadBytes(-h.bs)
}

// fillRun fetches the blocks first, first+1, ... into run's slots. Block
// first is read through the cache, its fetch reading the whole run with
// one GET that hands each block over as it arrives (see fetchRun); the
// others are then got as any reader gets them: from that run, cached, or
// fetched one by one if the run's GET failed. If block first came from
// elsewhere (a reader fetching it alone), the rest is still a run, and is
// fetched the same way. Cached blocks (on disk after a remount, typically)
// are read all at once, block by block.
func (h *readHandle) fillRun(ctx context.Context, first int64, run []*slot) {
	for len(run) > 1 && !h.fsys.cache.Cached(h.key(first)) {
		// The fetch may outlive this call (if ctx is done first): it
		// gets its own copy of the run's keys.
		keys := make([]block.Key, len(run))
		for j := range keys {
			keys[j] = h.key(first + int64(j))
		}
		var fetched atomic.Bool
		b, err := h.fsys.getBlockWith(ctx, keys[0], true, func(fctx context.Context) ([]byte, error) {
			fetched.Store(true)
			b, err := h.fsys.fetchRun(fctx, ctx, h.obj, keys)
			if err == nil || !objread.IsTransient(err) {
				return b, err
			}
			return h.fsys.fetchBlock(fctx, h.obj, keys[0].Index)
		})
		run[0].complete(b, err)
		first, run = first+1, run[1:]
		if fetched.Load() || ctx.Err() != nil {
			break
		}
	}
	var wg sync.WaitGroup // at most runBlocks goroutines
	for j := range run {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run[j].complete(h.fsys.getBlock(ctx, h.obj, h.key(first+int64(j)), true))
		}()
	}
	wg.Wait()
}

// dropLocked removes slot i, releasing its budget.
func (h *readHandle) dropLocked(i int64) {
	s := h.slots[i]
	delete(h.slots, i)
	h.fsys.readahead.Release(h.bs)
	h.fsys.metrics.readaheadBytes(-h.bs)
	if !s.used {
		h.fsys.metrics.dropped(1)
	}
}
