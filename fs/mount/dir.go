package mount

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// dirNode is a directory: the root, an implicit directory (a common prefix
// of keys) or a marked one (a "dir/" object).
type dirNode struct {
	fs.Inode
	fsys *filesystem
	key  string // "" for the root, else the directory's key, ending in "/"

	mu sync.Mutex
	// served is the listing the last opendir served: an opendir serving
	// the same one lets the kernel keep its cached entries.
	served *listing // GUARDED_BY(mu)
	scan   scan     // GUARDED_BY(mu); see opened
}

var (
	_ = (fs.NodeGetattrer)((*dirNode)(nil))
	_ = (fs.NodeLookuper)((*dirNode)(nil))
	_ = (fs.NodeOpendirHandler)((*dirNode)(nil))
)

// Getattr implements fs.NodeGetattrer: directories have no attributes in
// the store; they show the mount's options and start time.
func (d *dirNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fsys.dirAttr(&out.Attr)
	out.SetTimeout(d.fsys.kernelTTL())
	return 0
}

// Lookup implements fs.NodeLookuper.
func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if c, ok := d.localChild(name); ok {
		return d.childInode(ctx, c, d.fsys.now(), out), 0
	}
	c, loaded, err := d.fsys.lookup(ctx, d.key, name)
	if err != nil {
		return nil, d.fsys.errno(ctx, opLookup, d.key+name, err)
	}
	return d.childInode(ctx, c, loaded, out), 0
}

// childInode returns the inode of c, filling out. A file's inode stands
// for one version of its object: the existing inode is reused only when
// the version is the same, so the kernel's page cache of an inode never
// holds bytes of two versions, and handles opened on an older version
// keep reading it.
func (d *dirNode) childInode(ctx context.Context, c child, loaded time.Time, out *fuse.EntryOut) *fs.Inode {
	ttl := d.fsys.timeout(loaded)
	out.SetEntryTimeout(ttl)
	out.SetAttrTimeout(ttl)
	if c.dir {
		d.fsys.dirAttr(&out.Attr)
	} else if d.fsys.w != nil {
		return d.wfileInode(ctx, c, out)
	} else {
		d.fsys.fileAttr(c.obj, &out.Attr)
	}
	if ch := d.GetChild(c.name); ch != nil {
		switch n := ch.Operations().(type) {
		case *dirNode:
			if c.dir {
				return ch
			}
		case *fileNode:
			if !c.dir && n.obj.same(c.obj) {
				return ch
			}
		}
	}
	if c.dir {
		return d.NewInode(ctx, &dirNode{fsys: d.fsys, key: d.key + c.name + "/"}, fs.StableAttr{Mode: syscall.S_IFDIR})
	}
	return d.NewInode(ctx, newFileNode(d.fsys, d, c.obj), fs.StableAttr{Mode: syscall.S_IFREG})
}

// OpendirHandle implements fs.NodeOpendirHandler: the handle serves one
// listing, read whole at open (from the metadata cache, or one ListDir),
// and answers the lookups of READDIRPLUS from it, so that listing a
// directory costs its LIST pages and no request per entry, whatever the
// metadata TTL.
func (d *dirNode) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	l, err := d.fsys.listing(ctx, d.key)
	if err != nil {
		return nil, 0, d.fsys.errno(ctx, opReaddir, d.key, err)
	}
	l = d.withLocal(l)
	d.fsys.prefetchListings(d.key, l)
	d.mu.Lock()
	first, same := d.served == nil, d.served == l
	d.served = l
	d.mu.Unlock()
	var fuseFlags uint32
	if first || same {
		// The kernel may cache the entries it reads, and keep those it
		// has: they are this listing's. A new listing is served without
		// (which also drops what the kernel cached).
		fuseFlags = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	}
	return &dirHandle{dir: d, l: l}, fuseFlags, 0
}

// dirHandle is an open directory: a position in one listing. The kernel
// serialises the calls on one directory handle.
type dirHandle struct {
	dir *dirNode
	l   *listing

	mu  sync.Mutex
	pos int // GUARDED_BY(mu); index of the next entry: 0 ".", 1 "..", then the children
}

var (
	_ = (fs.FileReaddirenter)((*dirHandle)(nil))
	_ = (fs.FileLookuper)((*dirHandle)(nil))
	_ = (fs.FileSeekdirer)((*dirHandle)(nil))
)

// Readdirent implements fs.FileReaddirenter.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := h.pos
	if i >= 2+len(h.l.children) {
		return nil, 0
	}
	h.pos++
	de := &fuse.DirEntry{Off: uint64(i + 1), Mode: syscall.S_IFDIR}
	switch i {
	case 0:
		de.Name = "."
	case 1:
		de.Name = ".."
	default:
		c := h.l.children[i-2]
		de.Name = c.name
		if !c.dir {
			de.Mode = syscall.S_IFREG
		}
	}
	return de, 0
}

// Seekdir implements fs.FileSeekdirer: offsets are the Off of the entry
// read last, 0 the start.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pos = int(min(off, uint64(2+len(h.l.children))))
	return 0
}

// Lookup implements fs.FileLookuper: READDIRPLUS asks for the entry just
// read, which the handle's listing holds.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	c, ok := h.l.find(name)
	if !ok {
		return nil, h.dir.fsys.errno(ctx, opLookup, h.dir.key+name, notExist(h.dir.key+name))
	}
	return h.dir.childInode(ctx, c, h.l.loaded, out), 0
}
