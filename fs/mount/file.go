package mount

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/cache/block"
	"github.com/ferryio/ferry/fs/objread"
)

// fileNode is one version of one object. Its attributes never change: a
// new version of the key gets a new node (see dirNode.childInode).
//
// Open hands out read-only handles; a writable handle type is meant to sit
// next to readHandle, chosen by Open from the flags.
type fileNode struct {
	fs.Inode
	fsys *filesystem
	dir  *dirNode // the directory it was looked up in
	obj  object
	vkey string // obj.versionKey, the Version of its blocks
}

var (
	_ = (fs.NodeGetattrer)((*fileNode)(nil))
	_ = (fs.NodeOpener)((*fileNode)(nil))
)

func newFileNode(f *filesystem, dir *dirNode, o object) *fileNode {
	return &fileNode{fsys: f, dir: dir, obj: o, vkey: o.versionKey(f.opts.BlockSize)}
}

// Getattr implements fs.NodeGetattrer.
func (n *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.fileAttr(n.obj, &out.Attr)
	out.SetTimeout(n.fsys.kernelTTL())
	return 0
}

// Open implements fs.NodeOpener. The handle is pinned to the node's
// version; the kernel may keep the pages it cached for this inode, since
// they are of the same version (FOPEN_KEEP_CACHE).
func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.dir != nil {
		n.dir.opened(n.obj.key[len(n.dir.key):])
	}
	return newReadHandle(n), fuse.FOPEN_KEEP_CACHE, 0
}

// readHandle is a file open for reading, pinned to its node's version:
// every block it reads is keyed by that version and fetched with
// IfVersion, so it never returns bytes of another version.
//
// Reads are served from blocks read ahead by this handle, else through the
// block cache. Sequential reads grow a readahead window (see window);
// blocks in it are fetched by background goroutines in runs (see plan), at
// most perHandlePrefetch runs at once for the handle. Each block read
// ahead, or kept for the reader (see keep), holds BlockSize bytes of the
// filesystem's readahead budget from when it is requested until the reader
// passes it, the window moves away from it, or the handle is released; a
// block that finds the budget spent is not read ahead.
//
// INVARIANT (whenever mu is not held):
//   - every slot in slots holds exactly BlockSize bytes of
//     fsys.readahead, released when it leaves slots;
//   - after Release, closed is true and slots is empty.
type readHandle struct {
	fsys   *filesystem
	node   *fileNode
	obj    *objread.Object
	bs     int64
	last   int64              // index of the last block
	ctx    context.Context    // for prefetches; cancelled by Release or unmount
	cancel context.CancelFunc // cancels ctx
	// prefetch runs the read-ahead goroutines.
	prefetch errgroup.Group

	mu     sync.Mutex
	win    window          // GUARDED_BY(mu)
	slots  map[int64]*slot // GUARDED_BY(mu); blocks read ahead, by index
	closed bool            // GUARDED_BY(mu)
}

var (
	_ = (fs.FileReader)((*readHandle)(nil))
	_ = (fs.FileReleaser)((*readHandle)(nil))
)

func newReadHandle(n *fileNode) *readHandle {
	f := n.fsys
	h := &readHandle{
		fsys:  f,
		node:  n,
		obj:   objread.Open(f.b, n.obj.info(), objread.Options{Logger: f.log}),
		bs:    f.opts.BlockSize,
		last:  (n.obj.size - 1) / f.opts.BlockSize,
		win:   newWindow(f.opts.BlockSize, f.opts.Readahead),
		slots: map[int64]*slot{},
	}
	h.ctx, h.cancel = context.WithCancel(f.closing)
	h.prefetch.SetLimit(perHandlePrefetch)
	return h
}

// Read implements fs.FileReader. A read within one block returns a slice
// of the cached block, without copying.
func (h *readHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	size := h.node.obj.size
	if off >= size || len(dest) == 0 {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), size)
	h.plan(off, end)
	first, last := off/h.bs, (end-1)/h.bs
	if first == last {
		b, err := h.block(ctx, first)
		if err != nil {
			return nil, h.fsys.errno(ctx, opRead, h.node.obj.key, err)
		}
		h.fsys.metrics.read(int(end - off))
		return fuse.ReadResultData(b[off-first*h.bs : end-first*h.bs]), 0
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := first; i <= last; i++ {
		g.Go(func() error {
			b, err := h.block(gctx, i)
			if err != nil {
				return err
			}
			lo, hi := max(off, i*h.bs), min(end, (i+1)*h.bs)
			copy(dest[lo-off:hi-off], b[lo-i*h.bs:hi-i*h.bs])
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, h.fsys.errno(ctx, opRead, h.node.obj.key, err)
	}
	h.fsys.metrics.read(int(end - off))
	return fuse.ReadResultData(dest[:end-off]), 0
}

// block returns block i: read ahead by this handle, else from the block
// cache (or fetched through it).
func (h *readHandle) block(ctx context.Context, i int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // interrupted: not even a block already at hand
	}
	h.mu.Lock()
	s := h.slots[i]
	if s != nil {
		s.used = true
	}
	h.mu.Unlock()
	if s != nil {
		select {
		case <-s.done:
			if s.err == nil {
				return h.check(i, s.data)
			}
			// Fall back to the cache, which fetches again or
			// reports why it cannot.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	b, err := h.fsys.getBlock(ctx, h.obj, h.key(i), false)
	if err != nil {
		return nil, err
	}
	h.keep(i, b)
	return h.check(i, b)
}

// keep holds block i, just fetched for a read, in a slot while the reader
// is in it: the memory tier admits blocks asynchronously (and may refuse
// them), and the kernel reads a block in several requests. The slot takes
// readahead budget like any other; without budget the block is not kept.
func (h *readHandle) keep(i int64, b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.slots[i]; ok || h.closed || !h.fsys.readahead.TryAcquire(h.bs) {
		return
	}
	s := newSlot()
	s.used = true
	s.complete(b, nil)
	h.slots[i] = s
	h.fsys.metrics.readaheadBytes(h.bs)
}

// check guards against a block of the wrong length, which would mean the
// block is not of the pinned version.
func (h *readHandle) check(i int64, b []byte) ([]byte, error) {
	want := min(h.bs, h.node.obj.size-i*h.bs)
	if int64(len(b)) != want {
		return nil, backends.Errorf("get", h.fsys.store, h.node.obj.key, backends.ErrPrecondition,
			fmt.Errorf("block %d holds %d bytes, want %d", i, len(b), want))
	}
	return b, nil
}

func (h *readHandle) key(i int64) block.Key { return h.fsys.blockKey(h.node.obj, h.node.vkey, i) }

// Release implements fs.FileReleaser: it stops the handle's prefetches and
// gives back their budget.
func (h *readHandle) Release(ctx context.Context) syscall.Errno {
	h.cancel()
	h.mu.Lock()
	h.closed = true
	for i := range h.slots {
		h.dropLocked(i)
	}
	h.mu.Unlock()
	return 0
}
