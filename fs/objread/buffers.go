package objread

import "github.com/ferryio/ferry/internal/pagebuf"

// Buffers is a free list of copy buffers of one size, shared by the
// Downloads of a run so that they reuse a few buffers instead of each
// allocating its own (which, object after object, is garbage the GC lets
// pile up to twice the live heap before it collects). A Download worker
// takes one for the part it fetches, a checker one for each read-back,
// and each gives it back when done: the buffers in use are bounded by the
// callers' concurrency, and the list keeps at most keep idle ones.
// Buffers of a page or more start page-aligned, so that a destination
// opened with O_DIRECT can take them as they are. Safe for concurrent use.
type Buffers struct {
	size int
	free chan []byte
}

// NewBuffers returns a free list of buffers of size bytes that keeps up to
// keep idle buffers. Buffers are allocated on demand.
func NewBuffers(size, keep int) *Buffers {
	return &Buffers{size: max(size, 1), free: make(chan []byte, max(keep, 0))}
}

// Size is the length of the buffers.
func (b *Buffers) Size() int { return b.size }

// get returns an idle buffer, or a new one.
func (b *Buffers) get() []byte {
	select {
	case p := <-b.free:
		return p
	default:
		return newBuffer(b.size)
	}
}

// newBuffer allocates n bytes, page-aligned when n is a page or more.
func newBuffer(n int) []byte {
	if n < pagebuf.Size {
		return make([]byte, n)
	}
	return pagebuf.Alloc(n)
}

// put gives p back; it is dropped when the list is full.
func (b *Buffers) put(p []byte) {
	select {
	case b.free <- p[:b.size:b.size]:
	default:
	}
}
