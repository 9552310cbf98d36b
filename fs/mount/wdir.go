package mount

import (
	"context"
	"errors"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/store"
)

// The namespace operations of a read-write mount. Each one changes the
// store before it returns (files created here are the exception: they
// reach the store on close or fsync, and show from their staged file
// until then). A read-only mount answers EROFS.

var (
	_ = (fs.NodeCreater)((*dirNode)(nil))
	_ = (fs.NodeMkdirer)((*dirNode)(nil))
	_ = (fs.NodeRmdirer)((*dirNode)(nil))
	_ = (fs.NodeUnlinker)((*dirNode)(nil))
	_ = (fs.NodeRenamer)((*dirNode)(nil))
)

// localChild finds name in d among the staged files, which shadow the
// store.
func (d *dirNode) localChild(name string) (child, bool) {
	if d.fsys.w == nil || d.fsys.w.get(d.key+name) == nil {
		return child{}, false
	}
	return child{name: name, obj: object{key: d.key + name}}, true
}

// withLocal adds to l the staged files of d that it lacks (created, not
// yet stored); l itself when there are none.
func (d *dirNode) withLocal(l *listing) *listing {
	if d.fsys.w == nil {
		return l
	}
	var extra []child
	for _, c := range d.fsys.w.localChildren(d.key) {
		if _, ok := l.find(c.name); !ok {
			extra = append(extra, c)
		}
	}
	if len(extra) == 0 {
		return l
	}
	kids := append(append([]child(nil), l.children...), extra...)
	return &listing{loaded: l.loaded, children: dedupe(kids, d.key, d.fsys.hidden)}
}

// wfileInode is childInode for a file of a read-write mount: the node of
// a name is kept across versions (opens do not keep the page cache, see
// wnode.Open), and a staged file's attributes win over the store's.
func (d *dirNode) wfileInode(ctx context.Context, c child, out *fuse.EntryOut) *fs.Inode {
	key := d.key + c.name
	if wf := d.fsys.w.get(key); wf != nil {
		if size, mode, mtime, err := d.fsys.w.attrs(wf); err == nil {
			d.fsys.fileAttr(object{key: key, size: size, mtime: mtime}, &out.Attr)
			out.Mode = syscall.S_IFREG | mode
		}
	} else {
		d.fsys.fileAttr(c.obj, &out.Attr)
	}
	if ch := d.GetChild(c.name); ch != nil {
		if n, ok := ch.Operations().(*wnode); ok {
			n.refresh(c.obj)
			return ch
		}
	}
	return d.NewInode(ctx, &wnode{fsys: d.fsys, key: key, obj: c.obj}, fs.StableAttr{Mode: syscall.S_IFREG})
}

// Create implements fs.NodeCreater: the file is staged empty and reaches
// the store on close.
func (d *dirNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if d.fsys.w == nil {
		return nil, nil, 0, syscall.EROFS
	}
	key := d.key + name
	if d.fsys.w.get(key) != nil {
		return nil, nil, 0, d.fsys.errno(ctx, opCreate, key, errExists)
	}
	wf, err := d.fsys.w.open(ctx, key, nil, true, mode&0o7777)
	if err != nil {
		return nil, nil, 0, d.fsys.errno(ctx, opCreate, key, err)
	}
	d.fsys.w.invalidate(key)
	n := &wnode{fsys: d.fsys, key: key, obj: object{key: key}}
	if ch := d.GetChild(name); ch != nil {
		d.RmChild(name)
	}
	ino := d.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG})
	d.fsys.fileAttr(object{key: key, mtime: d.fsys.now()}, &out.Attr)
	out.Mode = syscall.S_IFREG | mode&0o7777
	return ino, newWriteHandle(n, wf), 0, 0
}

// Mkdir implements fs.NodeMkdirer: it stores the "dir/" marker.
func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if d.fsys.w == nil {
		return nil, syscall.EROFS
	}
	key := d.key + name + "/"
	if _, err := store.PutMarker(ctx, d.fsys.w.upload, key, d.fsys.now(), fsMode(mode)); err != nil {
		return nil, d.fsys.errno(ctx, opMkdir, key, err)
	}
	d.fsys.w.invalidate(key)
	d.fsys.listings.Invalidate(key)
	d.fsys.dirAttr(&out.Attr)
	return d.NewInode(ctx, &dirNode{fsys: d.fsys, key: key}, fs.StableAttr{Mode: syscall.S_IFDIR}), 0
}

// Rmdir implements fs.NodeRmdirer: an empty directory loses its marker;
// a directory with any key or staged file below it is ENOTEMPTY.
func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if d.fsys.w == nil {
		return syscall.EROFS
	}
	key := d.key + name + "/"
	if err := d.empty(ctx, key); err != nil {
		return d.fsys.errno(ctx, opRemove, key, err)
	}
	if err := d.fsys.b.Delete(ctx, key); err != nil {
		return d.fsys.errno(ctx, opRemove, key, err)
	}
	d.fsys.w.invalidate(key)
	d.fsys.listings.Invalidate(key)
	return 0
}

// empty checks, with a fresh listing, that nothing but its marker is
// below the directory key.
func (d *dirNode) empty(ctx context.Context, key string) error {
	if d.fsys.w.hasUnder(key) {
		return errNotEmpty
	}
	for e, err := range d.fsys.b.ListDir(ctx, key) {
		if err != nil {
			return err
		}
		if e.Key != key {
			return errNotEmpty
		}
	}
	return nil
}

// Unlink implements fs.NodeUnlinker.
func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if d.fsys.w == nil {
		return syscall.EROFS
	}
	key := d.key + name
	return d.fsys.errno(ctx, opRemove, key, d.fsys.w.remove(ctx, key))
}

// Rename implements fs.NodeRenamer for files: the bytes are stored at the
// new key, then the old key is deleted (see writer.rename). Directories
// are not renamed (EXDEV: mv copies them instead); nor are names
// exchanged (RENAME_EXCHANGE, EINVAL).
func (d *dirNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if d.fsys.w == nil {
		return syscall.EROFS
	}
	from := d.key + name
	nd, ok := newParent.(*dirNode)
	if !ok || flags&unix.RENAME_EXCHANGE != 0 {
		return syscall.EINVAL
	}
	to := nd.key + newName
	ch := d.GetChild(name)
	if ch == nil {
		var out fuse.EntryOut
		var errno syscall.Errno
		if ch, errno = d.Lookup(ctx, name, &out); errno != 0 {
			return errno
		}
	}
	n, isFile := ch.Operations().(*wnode)
	if !isFile {
		return d.fsys.errno(ctx, opRename, from, errCrossDir)
	}
	toBase, exists, err := nd.versionOf(ctx, newName)
	switch {
	case errors.Is(err, errExists):
		return d.fsys.errno(ctx, opRename, to, syscall.EISDIR)
	case err != nil:
		return d.fsys.errno(ctx, opRename, to, err)
	case exists && flags&unix.RENAME_NOREPLACE != 0:
		return d.fsys.errno(ctx, opRename, to, errExists)
	}
	wf, err := n.staged(ctx, false)
	if err == nil {
		err = d.fsys.w.rename(ctx, wf, from, to, toBase)
	}
	if err != nil {
		return d.fsys.errno(ctx, opRename, from, err)
	}
	n.moved(to)
	return 0
}

// versionOf returns the version of the file name in d as this mount knows
// it (staged or looked up), whether there is one, and errExists when name
// is a directory.
func (d *dirNode) versionOf(ctx context.Context, name string) (*backends.Version, bool, error) {
	if v, ok := d.fsys.w.baseOf(d.key + name); ok {
		return v, true, nil
	}
	c, _, err := d.fsys.lookup(ctx, d.key, name)
	switch {
	case isNotExist(err):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case c.dir:
		return nil, true, errExists
	}
	v := c.obj.version
	return &v, true, nil
}

var _ = (fs.NodeSetattrer)((*dirNode)(nil))

// Setattr implements fs.NodeSetattrer: directories keep no attributes in
// the store (their markers are not rewritten), so on a read-write mount
// chmod, chown and utimes of a directory succeed and change nothing, as
// tar and cp -p expect.
func (d *dirNode) Setattr(ctx context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if d.fsys.w == nil {
		return syscall.EROFS
	}
	return d.Getattr(ctx, nil, out)
}
