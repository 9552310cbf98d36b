package mount

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// wnode is a file of a read-write mount: the object obj of the store
// until the file is first opened for writing (or truncated, chmod'ed,
// touched), and from then on the staged file of its key (see wfile), which
// reads, writes and attributes go to.
type wnode struct {
	fs.Inode
	fsys *filesystem

	mu  sync.Mutex
	key string // GUARDED_BY(mu); changes on rename
	// obj is what the store held when the file was looked up; a zero
	// version for a file created here.
	obj object // GUARDED_BY(mu)
}

var (
	_ = (fs.NodeGetattrer)((*wnode)(nil))
	_ = (fs.NodeSetattrer)((*wnode)(nil))
	_ = (fs.NodeOpener)((*wnode)(nil))
	_ = (fs.NodeFsyncer)((*wnode)(nil))
)

func (n *wnode) state() (string, object) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.key, n.obj
}

// refresh records what a listing or lookup found at the node's key.
func (n *wnode) refresh(o object) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if o.key == n.key {
		n.obj = o
	}
}

func (n *wnode) moved(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.key, n.obj.key = key, key
}

// staged returns the node's staged file, staging it (a copy of the
// object, or empty with trunc) when there is none. A node created here
// whose staged file went away (a conflict moved it) copies what the store
// holds now.
func (n *wnode) staged(ctx context.Context, trunc bool) (*wfile, error) {
	key, obj := n.state()
	if wf := n.fsys.w.get(key); wf != nil || !obj.version.IsZero() {
		return n.fsys.w.open(ctx, key, &obj, trunc, n.fsys.opts.FileMode)
	}
	info, err := n.fsys.b.Stat(ctx, key)
	switch {
	case err == nil:
		o := objectOf(info)
		return n.fsys.w.open(ctx, key, &o, trunc, n.fsys.opts.FileMode)
	case isNotExist(err):
		return n.fsys.w.open(ctx, key, nil, trunc, n.fsys.opts.FileMode)
	}
	return nil, err
}

// Getattr implements fs.NodeGetattrer.
func (n *wnode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	key, obj := n.state()
	if wf := n.fsys.w.get(key); wf != nil {
		size, mode, mtime, err := n.fsys.w.attrs(wf)
		if err != nil {
			return n.fsys.errno(ctx, opWrite, key, err)
		}
		n.fsys.fileAttr(object{key: key, size: size, mtime: mtime}, &out.Attr)
		out.Mode = syscall.S_IFREG | mode
		return 0
	}
	n.fsys.fileAttr(obj, &out.Attr)
	out.SetTimeout(n.fsys.kernelTTL())
	return 0
}

// Setattr implements fs.NodeSetattrer: size, mode and times change the
// staged file, which is committed at once unless a handle is open for
// writing (its close commits).
func (n *wnode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	key, _ := n.state()
	size, hasSize := in.GetSize()
	mode, hasMode := in.GetMode()
	mtime, hasMtime := in.GetMTime()
	if !hasSize && !hasMode && !hasMtime {
		return n.Getattr(ctx, fh, out)
	}
	wf, err := n.staged(ctx, hasSize && size == 0)
	if err == nil && hasSize {
		err = n.fsys.w.truncate(wf, int64(size))
	}
	if err == nil && (hasMode || hasMtime) {
		var mp *uint32
		var tp *time.Time
		if hasMode {
			mp = &mode
		}
		if hasMtime {
			tp = &mtime
		}
		n.fsys.w.setAttrs(wf, mp, tp)
	}
	if _, writing := fh.(*writeHandle); err == nil && !writing {
		err = n.fsys.w.commit(ctx, wf, false)
	}
	if err != nil {
		return n.fsys.errno(ctx, opWrite, key, err)
	}
	return n.Getattr(ctx, fh, out)
}

// Open implements fs.NodeOpener. A read-only open of a file that was
// never staged reads the store's object like the read-only mount; any
// other open goes to the staged file.
func (n *wnode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	key, obj := n.state()
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
	if !write && n.fsys.w.get(key) == nil {
		return newReadHandle(newFileNode(n.fsys, nil, obj)), 0, 0
	}
	wf, err := n.staged(ctx, flags&syscall.O_TRUNC != 0)
	if err != nil {
		return nil, 0, n.fsys.errno(ctx, opWrite, key, err)
	}
	return newWriteHandle(n, wf), 0, 0
}

// Fsync implements fs.NodeFsyncer: it returns once the file's bytes are
// in the store.
func (n *wnode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	key, _ := n.state()
	wf := n.fsys.w.get(key)
	if h, ok := fh.(*writeHandle); ok {
		wf = h.wf
	}
	if wf == nil {
		return 0 // nothing staged: the store has it
	}
	return n.fsys.errno(ctx, opWrite, key, n.fsys.w.commit(ctx, wf, true))
}

// writeHandle is an open staged file. The kernel may call it from several
// threads; the staged file's own offsets make that safe.
type writeHandle struct {
	node *wnode
	wf   *wfile
}

var (
	_ = (fs.FileReader)((*writeHandle)(nil))
	_ = (fs.FileWriter)((*writeHandle)(nil))
	_ = (fs.FileFlusher)((*writeHandle)(nil))
	_ = (fs.FileReleaser)((*writeHandle)(nil))
)

func newWriteHandle(n *wnode, wf *wfile) *writeHandle {
	n.fsys.w.opened(wf)
	return &writeHandle{node: n, wf: wf}
}

// Read implements fs.FileReader: the staged bytes, the file's own
// writes included.
func (h *writeHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.node.fsys.w.readAt(h.wf, dest, off)
	if err != nil {
		key, _ := h.node.state()
		return nil, h.node.fsys.errno(ctx, opRead, key, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write implements fs.FileWriter.
func (h *writeHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := h.node.fsys.w.writeAt(h.wf, data, off)
	if err != nil {
		key, _ := h.node.state()
		return uint32(n), h.node.fsys.errno(ctx, opWrite, key, err)
	}
	return uint32(n), 0
}

// Flush implements fs.FileFlusher: every close(2) commits what was
// written (see writer.commit), and its error is close's.
func (h *writeHandle) Flush(ctx context.Context) syscall.Errno {
	key, _ := h.node.state()
	return h.node.fsys.errno(ctx, opWrite, key, h.node.fsys.w.commit(ctx, h.wf, false))
}

// Release implements fs.FileReleaser.
func (h *writeHandle) Release(ctx context.Context) syscall.Errno {
	h.node.fsys.w.released(h.wf)
	return 0
}
