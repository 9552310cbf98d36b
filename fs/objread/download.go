package objread

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/ferryio/ferry/backends"
)

// Reasons in Result.Unverified.
const (
	UnverifiedNotRequested = "not requested"
	UnverifiedNoChecksum   = "no checksum from store"
	UnverifiedNotReadable  = "destination is not an io.ReaderAt"
)

// DownloadOptions tune one Download.
type DownloadOptions struct {
	// From: the bytes [0, From) are already in the destination (a
	// contiguous prefix kept from an earlier run); only [From, Size) is
	// fetched. 0 <= From <= Size.
	From int64
	// Done, when set, is asked once per part before any fetching; parts
	// it reports done (journaled by an earlier run) are not fetched.
	Done func(part int) bool
	// OnPart, when set, is called after part i has been completely
	// written to the destination (every WriteAt of it returned), with the
	// bytes written for it by this call, so that the caller can journal
	// it. Not called for skipped parts. Calls come from several
	// goroutines at once, once per part; a returned error aborts the
	// download and is returned by it. Durability (fsync before
	// journaling) is the caller's choice.
	OnPart func(part int, n int64) error
	// OnBytes, when set, is called with the size of each chunk written,
	// for progress bars; from several goroutines at once; it must be
	// fast.
	OnBytes func(n int64)
	// Slots, when set, bounds the ranged GETs in flight across the
	// Downloads that share it: each part takes one slot (Acquire(ctx, 1))
	// before its GET and gives it back (Release(1)) once it is written and
	// reported to OnPart, so a slot a Download no longer needs (its last
	// parts are under way, or it is verifying) goes at once to whoever
	// waits. Parts ask for their slots in order, one at a time, and
	// Concurrency still caps this Download's own parts in flight. A
	// *semaphore.Weighted (golang.org/x/sync), which serves waiters in
	// order, fits.
	Slots Slots
	// Dispatched, when set, is called once, as soon as every part to
	// fetch has its slot and its GET under way, or the Download ended
	// before that: from then on this Download starts no GET, so the
	// caller may start the next one, which then gets only the slots this
	// one cannot use.
	Dispatched func()
	// Verify checks the object's bytes against the pinned info's
	// checksums. When the store gave several, only the cheapest is
	// checked (see preferCRC): as good at catching corruption, and CRCs
	// hash several times faster than MD5, and combine. See Download for
	// how each is computed.
	Verify bool
}

// Slots is a counting semaphore shared by Downloads (see
// DownloadOptions.Slots).
type Slots interface {
	// Acquire blocks until n slots are free and takes them, or returns
	// ctx's error.
	Acquire(ctx context.Context, n int64) error
	// Release gives back n slots taken by Acquire.
	Release(n int64)
}

// Result reports what a Download did.
type Result struct {
	// Fetched is the number of bytes fetched and written by this call.
	Fetched int64
	// Parts is the number of parts fetched by this call; Skipped the
	// number skipped because of From or Done.
	Parts, Skipped int
	// Checked names the checksums that were compared and matched (CRC32C,
	// MD5); empty when nothing was checked, and then Unverified says why
	// (one of the Unverified* reasons).
	Checked []string
	// ReadBack is the number of bytes read back from the destination to
	// verify them.
	ReadBack   int64
	Unverified string
}

// Download writes the pinned object's bytes [From, Size) into w at their
// own offsets, in parts of PartSize fetched by up to Concurrency ranged
// GETs at once (each holding one of opts.Slots, when set), each retried as
// ReadAt is. Each part's body is streamed into w through one BufferSize
// buffer per worker, so memory stays within min(Concurrency, parts) *
// min(BufferSize, PartSize) plus one buffer when verifying reads back,
// whatever the object's size. WriteAt calls on w are
// made one at a time (never while a body is read): buffered writes to one
// file take its inode lock in the kernel, and concurrent writers spin on
// it, burning the CPU the store and the other workers need.
//
// With Verify, and a CRC (CRC32C, CRC32 or CRC64NVME) from the store, each
// part is hashed in flight, chunk by chunk as it is handed to w, and the
// parts' CRCs are combined into the object's (crcCombine); the bytes
// already in w (before From, and parts skipped as Done) are read back
// through w, which must then be an io.ReaderAt, by one goroutine running
// alongside the fetches: after a resume, every byte is still covered. The verdict is on
// the bytes received and written for fetched parts, and on the bytes as
// read back for kept ones. An object fetched whole by one GET (the common
// small object) is hashed in flight with whatever checksum the store has,
// MD5 included, and that GET runs on the caller's goroutine. Otherwise,
// with only an MD5, which cannot be combined, a checker goroutine hashes the destination in order, reading back each
// byte once the contiguous prefix of finished parts reaches it, overlapping
// the download: one sequential read of the object (through the page cache,
// normally) on top of the hashing. A mismatch returns an error wrapping
// backends.ErrChecksum; without a checksum from the store Download succeeds
// and says so in Result.Unverified.
//
// Download does not truncate or sync w. On error, parts already reported to
// OnPart are complete and the rest of w is unspecified. An object replaced
// since it was pinned returns an error matching backends.ErrPrecondition
// (never a mix of versions); a cancelled ctx returns context.Canceled
// promptly.
func (o *Object) Download(ctx context.Context, w io.WriterAt, opts DownloadOptions) (Result, error) {
	size := o.info.Size
	if opts.From < 0 || opts.From > size {
		return Result{}, backends.Errorf("download", o.b.String(), o.info.Key, backends.ErrInvalidRange,
			fmt.Errorf("from %d outside [0, %d]", opts.From, size))
	}
	if opts.Dispatched != nil {
		dispatched := sync.OnceFunc(opts.Dispatched)
		opts.Dispatched = dispatched
		defer dispatched()
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	tr := newTracker(o)
	var todo []int
	var kept []span // bytes already in w, in order, contiguous ones merged
	keep := func(from, to int64) {
		if n := len(kept); n > 0 && kept[n-1].to == from {
			kept[n-1].to = to
		} else if from < to {
			kept = append(kept, span{from, to})
		}
	}
	var res Result
	for i := range o.Parts() {
		off, n := o.Part(i)
		if off+n <= opts.From || (opts.Done != nil && opts.Done(i)) {
			tr.markDone(i)
			res.Skipped++
			keep(off, off+n)
			continue
		}
		keep(off, max(off, opts.From))
		todo = append(todo, i)
	}

	var cc *crcCheck
	var chk *checker
	var stream *summer // whole is true: the one GET's bytes, hashed as they arrive
	r, readable := w.(io.ReaderAt)
	want := preferCRC(o.info.Checksums)
	whole := len(todo) == 1 && len(kept) == 0
	switch {
	case !opts.Verify:
		res.Unverified = UnverifiedNotRequested
	case want.IsZero():
		res.Unverified = UnverifiedNoChecksum
	case hasCRC(want):
		if len(kept) > 0 && !readable {
			res.Unverified = UnverifiedNotReadable
			break
		}
		c, err := newCRCCheck(o.info.Key, want, kept)
		if err != nil {
			return Result{}, fmt.Errorf("verify %q: %w", o.info.Key, err)
		}
		cc = c
	case whole:
		s, err := newSummer(want)
		if err != nil {
			return Result{}, fmt.Errorf("verify %q: %w", o.info.Key, err)
		}
		stream = s
	case !readable:
		res.Unverified = UnverifiedNotReadable
	default:
		s, err := newSummer(want)
		if err != nil {
			return Result{}, fmt.Errorf("verify %q: %w", o.info.Key, err)
		}
		chk = &checker{key: o.info.Key, sum: s, r: r, size: size}
	}

	workers := min(o.opts.Concurrency, max(len(todo), 1))
	bufSize := int(min(int64(o.opts.BufferSize), max(o.opts.PartSize, 1), max(size, 1)))
	bufs := o.opts.Buffers
	if bufs == nil {
		bufs = NewBuffers(bufSize, workers+1)
	}
	var lw io.WriterAt = &serialWriter{w: w}
	if _, ok := w.(ParallelWriterAt); ok {
		lw = w
	}
	var readBack atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	switch {
	case chk != nil:
		g.Go(func() error { return chk.run(gctx, tr, bufs, bufSize, &readBack) })
	case cc != nil && len(kept) > 0:
		g.Go(func() error { return cc.readKept(gctx, r, bufs, bufSize, &readBack) })
	}
	var fetched atomic.Int64
	part := func(ctx context.Context, i int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf := bufs.get()
		defer bufs.put(buf)
		off, n := o.Part(i)
		start := max(off, opts.From)
		var crc uint64
		var hash func([]byte)
		switch {
		case cc != nil:
			hash = func(p []byte) { crc = cc.alg.update(crc, p) }
		case stream != nil:
			hash = stream.write
		}
		err := o.fetch(ctx, start, off+n-start, copyInto(lw, buf[:bufSize], hash, func(k int64) {
			fetched.Add(k)
			if opts.OnBytes != nil {
				opts.OnBytes(k)
			}
		}))
		if err != nil {
			return err
		}
		if cc != nil {
			cc.add(start, off+n, crc)
		}
		if opts.OnPart != nil {
			if err := opts.OnPart(i, off+n-start); err != nil {
				return err
			}
		}
		tr.markDone(i)
		return nil
	}
	// Each part takes a worker of this Download, then a shared slot, in
	// part order; both are given back when the part is done. A lone part
	// with nothing alongside (the common small object) runs right here,
	// on the caller's goroutine and stack.
	own := semaphore.NewWeighted(int64(workers))
	var inlineErr error
	// failed is set by a part that failed before it gives its worker
	// back, so that no part starts after it: the errgroup cancels gctx
	// only once the part's func has returned, worker released.
	var failed atomic.Bool
	for _, i := range todo {
		if err := own.Acquire(gctx, 1); err != nil {
			break
		}
		if failed.Load() {
			own.Release(1)
			break
		}
		if opts.Slots != nil {
			if err := opts.Slots.Acquire(gctx, 1); err != nil {
				own.Release(1)
				break
			}
		}
		run := func() error {
			defer own.Release(1)
			if opts.Slots != nil {
				defer opts.Slots.Release(1)
			}
			err := part(gctx, i)
			if err != nil {
				failed.Store(true)
			}
			return err
		}
		if !whole {
			g.Go(run)
			continue
		}
		if opts.Dispatched != nil {
			opts.Dispatched()
		}
		inlineErr = run()
	}
	if opts.Dispatched != nil {
		opts.Dispatched()
	}
	err := g.Wait()
	if err == nil {
		err = inlineErr
	}
	res.Fetched = fetched.Load()
	res.ReadBack = readBack.Load()
	res.Parts = tr.count() - res.Skipped
	if err == nil {
		err = ctx.Err() // cancelled before any part started
	}
	if err != nil {
		return res, err
	}
	switch {
	case cc != nil:
		if err := cc.check(size); err != nil {
			return res, fmt.Errorf("verify %q: %w", o.info.Key, err)
		}
		res.Checked = []string{cc.alg.name}
	case stream != nil:
		if err := stream.check(); err != nil {
			return res, fmt.Errorf("verify %q: %w", o.info.Key, err)
		}
		res.Checked = stream.names()
	case chk != nil:
		res.Checked = chk.sum.names()
	}
	return res, nil
}

// ParallelWriterAt is a destination whose WriteAt calls Download makes
// concurrently, from its workers, instead of one at a time: one that
// writes around the page cache (O_DIRECT), where the serialised writes
// would leave the device one request at a time.
type ParallelWriterAt interface {
	io.WriterAt
	// ParallelWrites marks the type; it does nothing.
	ParallelWrites()
}

// serialWriter makes the WriteAt calls of a Download's workers one at a
// time (see Download).
type serialWriter struct {
	mu sync.Mutex
	w  io.WriterAt
}

func (s *serialWriter) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.WriteAt(p, off)
}

// copyInto returns a fillFunc that streams a body into w through buf,
// handing each chunk to hash (when not nil) as it is written, and reporting
// its size to onChunk. A fetch delivers its range in order (a retry resumes
// where the last try stopped), so hash sees the range's bytes in order.
func copyInto(w io.WriterAt, buf []byte, hash func([]byte), onChunk func(int64)) fillFunc {
	return func(body io.Reader, at, want int64) (int64, error) {
		var got int64
		for got < want {
			k, rerr := io.ReadFull(body, buf[:min(int64(len(buf)), want-got)])
			if k > 0 {
				if _, werr := w.WriteAt(buf[:k], at+got); werr != nil {
					return got, finalError{fmt.Errorf("objread: writing at offset %d: %w", at+got, werr)}
				}
				if hash != nil {
					hash(buf[:k])
				}
				got += int64(k)
				onChunk(int64(k))
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				return got, nil // short body: fetch retries the rest
			}
			if rerr != nil {
				return got, rerr
			}
		}
		return got, nil
	}
}

// tracker knows which parts are in the destination and how far the
// contiguous prefix of finished parts reaches.
type tracker struct {
	o      *Object
	notify chan struct{} // one pending wake-up for the checker
	mu     sync.Mutex
	done   []bool // GUARDED_BY(mu)
	next   int    // GUARDED_BY(mu); INVARIANT: done[:next] all true, next == len(done) or !done[next]
	n      int    // GUARDED_BY(mu); number of true in done
}

func newTracker(o *Object) *tracker {
	return &tracker{o: o, notify: make(chan struct{}, 1), done: make([]bool, o.Parts())}
}

// markDone records part i as in the destination and wakes the checker.
func (t *tracker) markDone(i int) {
	t.mu.Lock()
	if !t.done[i] {
		t.done[i] = true
		t.n++
	}
	for t.next < len(t.done) && t.done[t.next] {
		t.next++
	}
	t.mu.Unlock()
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// frontier is the end of the contiguous prefix of finished parts.
func (t *tracker) frontier() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next == len(t.done) {
		return t.o.info.Size
	}
	off, _ := t.o.Part(t.next)
	return off
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// checker hashes the destination in order as the finished prefix grows
// (MD5, which cannot be computed per part and combined).
type checker struct {
	key  string
	sum  *summer
	r    io.ReaderAt
	size int64
}

// run hashes r up to the tracker's frontier, waits for it to grow, and when
// the whole object is hashed compares the sums. It holds a buffer of bufs
// only while reading.
func (c *checker) run(ctx context.Context, tr *tracker, bufs *Buffers, bufSize int, readBack *atomic.Int64) error {
	var pos int64
	for {
		limit := tr.frontier()
		if pos < limit {
			buf := bufs.get()
			err := c.sum.readFrom(ctx, c.r, pos, limit, buf[:bufSize])
			bufs.put(buf)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("verify %q: %w", c.key, err)
			}
			readBack.Add(limit - pos)
			pos = limit
		}
		if pos == c.size {
			if err := c.sum.check(); err != nil {
				return fmt.Errorf("verify %q: %w", c.key, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tr.notify:
		}
	}
}

// ReadsBack reports whether a Download of several parts with Verify reads
// the destination back to check it against sums: when the store's only
// checksum is an MD5, which cannot be computed part by part. A caller can
// then keep the bytes where reading them back is cheap (the page cache).
func ReadsBack(sums backends.Checksums) bool { return !sums.IsZero() && !hasCRC(sums) }

// hasCRC reports whether sums has a CRC, which Download computes part by
// part and combines.
func hasCRC(sums backends.Checksums) bool {
	return len(sums.CRC32C) > 0 || len(sums.CRC32) > 0 || len(sums.CRC64NVME) > 0
}

// preferCRC keeps the cheapest checksum known: CRC32C, else CRC32 (both
// several GB/s in hardware), else CRC64NVME (1-2 GB/s in tables), else MD5
// (well under 1 GB/s per core). The CRCs also combine part by part.
func preferCRC(s backends.Checksums) backends.Checksums {
	switch {
	case len(s.CRC32C) > 0:
		return backends.Checksums{CRC32C: s.CRC32C}
	case len(s.CRC32) > 0:
		return backends.Checksums{CRC32: s.CRC32}
	case len(s.CRC64NVME) > 0:
		return backends.Checksums{CRC64NVME: s.CRC64NVME}
	}
	return s
}
