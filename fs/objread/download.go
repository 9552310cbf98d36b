package objread

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

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
	// Verify checks the written bytes against the pinned info's
	// checksums, reading them back through the destination (which must
	// then also be an io.ReaderAt, as *os.File is). When the store gave
	// several, only the cheapest is checked (see preferCRC): as good at
	// catching corruption, and CRCs hash several times faster than MD5.
	Verify bool
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
	Checked    []string
	Unverified string
}

// Download writes the pinned object's bytes [From, Size) into w at their
// own offsets, in parts of PartSize fetched by up to Concurrency ranged
// GETs at once, each retried as ReadAt is. Each part's body is streamed
// into w through one BufferSize buffer per worker, so memory stays within
// min(Concurrency, parts) * min(BufferSize, PartSize) plus one BufferSize
// buffer when verifying, whatever the object's size.
//
// With Verify, a checker goroutine hashes the destination sequentially,
// reading back (through the page cache, normally) each byte once the
// contiguous prefix of finished parts reaches it, overlapping the
// download; parts skipped as done, and bytes before From, are read back
// the same way. The extra cost is one sequential read of the object from
// the destination and the hashing CPU; the verdict is on the bytes as
// written, not as received. A mismatch returns an error wrapping
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
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	var res Result
	var chk *checker
	switch r, readable := w.(io.ReaderAt); {
	case !opts.Verify:
		res.Unverified = UnverifiedNotRequested
	case o.info.Checksums.IsZero():
		res.Unverified = UnverifiedNoChecksum
	case !readable:
		res.Unverified = UnverifiedNotReadable
	default:
		s, err := newSummer(preferCRC(o.info.Checksums))
		if err != nil {
			return Result{}, fmt.Errorf("verify %q: %w", o.info.Key, err)
		}
		chk = &checker{key: o.info.Key, sum: s, r: r, size: size}
	}

	tr := newTracker(o)
	var todo []int
	for i := range o.Parts() {
		off, n := o.Part(i)
		if off+n <= opts.From || (opts.Done != nil && opts.Done(i)) {
			tr.markDone(i)
			res.Skipped++
			continue
		}
		todo = append(todo, i)
	}

	workers := min(o.opts.Concurrency, max(len(todo), 1))
	bufSize := int(min(int64(o.opts.BufferSize), max(o.opts.PartSize, 1)))
	free := make(chan []byte, workers)
	g, gctx := errgroup.WithContext(ctx)
	if chk != nil {
		g.SetLimit(workers + 1)
		g.Go(func() error { return chk.run(gctx, tr, make([]byte, bufSize)) })
	} else {
		g.SetLimit(workers)
	}
	var fetched atomic.Int64
	for _, i := range todo {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			var buf []byte
			select {
			case buf = <-free:
			default:
				buf = make([]byte, bufSize) // at most `workers` of them: SetLimit
			}
			defer func() { free <- buf }()
			off, n := o.Part(i)
			start := max(off, opts.From)
			err := o.fetch(gctx, start, off+n-start, copyInto(w, buf, func(k int64) {
				fetched.Add(k)
				if opts.OnBytes != nil {
					opts.OnBytes(k)
				}
			}))
			if err != nil {
				return err
			}
			if opts.OnPart != nil {
				if err := opts.OnPart(i, off+n-start); err != nil {
					return err
				}
			}
			tr.markDone(i)
			return nil
		})
	}
	err := g.Wait()
	res.Fetched = fetched.Load()
	res.Parts = tr.count() - res.Skipped
	if err == nil {
		err = ctx.Err() // cancelled before any part started
	}
	if err != nil {
		return res, err
	}
	if chk != nil {
		res.Checked = chk.sum.names()
	}
	return res, nil
}

// copyInto returns a fillFunc that streams a body into w through buf,
// reporting each chunk written to onChunk.
func copyInto(w io.WriterAt, buf []byte, onChunk func(int64)) fillFunc {
	return func(body io.Reader, at, want int64) (int64, error) {
		var got int64
		for got < want {
			k, rerr := io.ReadFull(body, buf[:min(int64(len(buf)), want-got)])
			if k > 0 {
				if _, werr := w.WriteAt(buf[:k], at+got); werr != nil {
					return got, finalError{fmt.Errorf("objread: writing at offset %d: %w", at+got, werr)}
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

// checker hashes the destination in order as the finished prefix grows.
type checker struct {
	key  string
	sum  *summer
	r    io.ReaderAt
	size int64
}

// run hashes r up to the tracker's frontier, waits for it to grow, and when
// the whole object is hashed compares the sums.
func (c *checker) run(ctx context.Context, tr *tracker, buf []byte) error {
	var pos int64
	for {
		limit := tr.frontier()
		if err := c.sum.readFrom(ctx, c.r, pos, limit, buf); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("verify %q: %w", c.key, err)
		}
		pos = limit
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

// preferCRC keeps the cheapest checksum known: CRC32C, else CRC32 (both
// several GB/s), else MD5 (well under 1 GB/s per core).
func preferCRC(s backends.Checksums) backends.Checksums {
	switch {
	case len(s.CRC32C) > 0:
		return backends.Checksums{CRC32C: s.CRC32C}
	case len(s.CRC32) > 0:
		return backends.Checksums{CRC32: s.CRC32}
	}
	return s
}
