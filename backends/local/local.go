// Package local is the backends.Backend driver for a directory acting as a
// bucket: the embedded default provider, with no cloud account.
//
// Key k is the file root/k. A key ending in "/" is a directory marker: the
// directory root/k, marked as an object of size 0. A directory without a
// mark is only an implicit prefix, as on object stores. Keys a filesystem
// cannot hold are refused with backends.ErrInvalidKey: the empty key, NUL
// bytes, a leading "/", "." and ".." or empty segments, segments over 255
// bytes, keys below the staging directory ".ferry-tmp", and keys that need a
// file where a directory is, or the other way round ("a" and "a/b").
//
// Writes are atomic: bytes go to a file in root/.ferry-tmp (never listed),
// are fsynced and renamed into place, and the parent directory is fsynced.
// A failed or cancelled write leaves the key as it was and removes its
// temporary file; a process killed mid-write can leave files named put-* in
// root/.ferry-tmp, which are safe to delete when no ferry is running.
//
// Content type, user metadata, the MD5 and CRC32C of the content and a
// random nonce are kept as JSON in the user.ferry extended attribute of each
// file, written before the rename. Files placed by hand have none: their
// checksums are unknown (zero) and they carry no metadata. A file changed in
// place after ferry wrote it keeps its metadata but loses its checksums.
//
// Degraded mode: on a filesystem without user extended attributes (and on
// systems other than Linux) writes still succeed, but objects carry no
// metadata, content type or checksums, and a "dir/" marker creates the
// directory without marking it, so it shows only as an implicit prefix.
//
// Versions: the ETag is a hash of a file's size, mtime (ns), inode and
// nonce. Since every write is a rename of a new file, an open file is one
// version, and a pinned read compares the version of the file it opened.
//
// Deleting the last object below a directory removes the directories it
// leaves empty (up to a marked directory or the root), so that implicit
// prefixes disappear as on object stores. An empty directory made by other
// means is listed by ListDir as a prefix.
//
// Multipart uploads keep their parts as files in root/.ferry-tmp/uploads/
// (see multipart.go). Symlinks to regular files are followed; symlinks to
// directories, and files that are neither regular nor directories, are not
// listed.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ferryio/ferry/backends"
)

// stagingDir is the directory below root for temporary files and uploads.
const stagingDir = ".ferry-tmp"

// maxSegment is the longest file name most filesystems hold (NAME_MAX).
const maxSegment = 255

// Backend is a directory seen as a bucket. It is safe for concurrent use,
// also by several processes on the same directory.
type Backend struct {
	root  string // absolute, clean
	dir   string // root with one trailing "/"
	name  string // "file://" + root
	attrs attrStore
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.Multipart = (*Backend)(nil)
)

// New opens the directory root as a bucket. root must exist and be a
// directory, else the error matches backends.ErrNoBucket. New writes
// nothing: the staging directory is made by the first write.
func New(root string) (*Backend, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, backends.Errorf("open", "file://"+root, "", backends.ErrNoBucket, err)
	}
	name := "file://" + abs
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, backends.Errorf("open", name, "", backends.ErrNoBucket,
			fmt.Errorf("the local root directory %s does not exist (create it first, as one creates a bucket)", abs))
	}
	if err != nil {
		return nil, backends.Errorf("open", name, "", backends.ErrNoBucket,
			fmt.Errorf("the local root directory %s cannot be used: %w", abs, err))
	}
	if !fi.IsDir() {
		return nil, backends.Errorf("open", name, "", backends.ErrNoBucket,
			fmt.Errorf("the local root %s is not a directory", abs))
	}
	return &Backend{root: abs, dir: strings.TrimSuffix(abs, "/") + "/", name: name, attrs: xattrs{}}, nil
}

// String returns "file://" and the absolute root directory.
func (b *Backend) String() string { return b.name }

// Root returns the absolute root directory.
func (b *Backend) Root() string { return b.root }

// checkKey returns nil when a file or directory can hold key, and else an
// ErrInvalidKey error that says why.
func (b *Backend) checkKey(op, key string) error {
	var why string
	switch {
	case key == "":
		why = "the key is empty"
	case strings.IndexByte(key, 0) >= 0:
		why = "a file name cannot hold a NUL byte"
	case key[0] == '/':
		why = `a key starting with "/" has no file name`
	default:
		why = checkSegments(strings.TrimSuffix(key, "/"))
	}
	if why == "" {
		return nil
	}
	return backends.Errorf(op, b.name, key, backends.ErrInvalidKey, errors.New(why))
}

// checkSegments checks the "/"-separated segments of a relative path and
// returns why it is not one, or "".
func checkSegments(p string) string {
	for i, seg := range strings.Split(p, "/") {
		switch {
		case seg == "":
			return `an empty path segment ("//" or a trailing "/" too many) cannot be a file name`
		case seg == "." || seg == "..":
			return fmt.Sprintf("the path segment %q cannot be a file name", seg)
		case len(seg) > maxSegment:
			return fmt.Sprintf("a path segment of %d bytes is longer than a file name can be (%d)", len(seg), maxSegment)
		case i == 0 && seg == stagingDir:
			return fmt.Sprintf("%s is the driver's staging directory", stagingDir)
		}
	}
	return ""
}

// path returns the file of a checked key; for a marker, its directory.
func (b *Backend) path(key string) string {
	return b.dir + strings.TrimSuffix(key, "/")
}

// fail wraps err from op on key in a *backends.Error with the sentinel that
// applies. Errors that already are one pass through.
func (b *Backend) fail(op, key string, err error) error {
	var be *backends.Error
	if errors.As(err, &be) {
		return err
	}
	var kind error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		kind = backends.ErrNotExist
	case errors.Is(err, fs.ErrPermission):
		kind = backends.ErrPermission
	case errors.Is(err, syscall.ENAMETOOLONG):
		kind = backends.ErrInvalidKey
	}
	return backends.Errorf(op, b.name, key, kind, err)
}

// notExist is the error for a key that holds no object although its path
// holds something else (a directory without a mark, a device...).
func (b *Backend) notExist(op, key, why string) error {
	return backends.Errorf(op, b.name, key, backends.ErrNotExist, errors.New(why))
}

// Stat returns the attributes of the object at key. A missing key, and a
// key naming a directory that is no marker, return ErrNotExist; an invalid
// key returns ErrInvalidKey.
func (b *Backend) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return backends.ObjectInfo{}, b.fail("stat", key, err)
	}
	if err := b.checkKey("stat", key); err != nil {
		return backends.ObjectInfo{}, err
	}
	if strings.HasSuffix(key, "/") {
		return b.statMarker("stat", key)
	}
	f, info, err := b.open("stat", key)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	f.Close()
	return info, nil
}

// open opens the regular file of a checked key and describes it from the
// open file, so that the info and the bytes are of one version.
func (b *Backend) open(op, key string) (*os.File, backends.ObjectInfo, error) {
	p := b.path(key)
	fi, err := os.Stat(p)
	if err != nil {
		return nil, backends.ObjectInfo{}, b.fail(op, key, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, backends.ObjectInfo{}, b.notExist(op, key, fmt.Sprintf("%s is not a regular file", p))
	}
	// O_NONBLOCK: never hang on a FIFO put there since the Stat above.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, backends.ObjectInfo{}, b.fail(op, key, err)
	}
	fi, err = f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file: %w", p, fs.ErrNotExist)
	}
	var m meta
	var ok bool
	if err == nil {
		m, ok, err = b.readMeta(p, f)
	}
	if err != nil {
		f.Close()
		return nil, backends.ObjectInfo{}, b.fail(op, key, err)
	}
	return f, objectInfo(key, fi, m, ok), nil
}

// statMarker describes the marker of a checked key ending in "/".
func (b *Backend) statMarker(op, key string) (backends.ObjectInfo, error) {
	p := b.path(key)
	fi, err := os.Stat(p)
	if err != nil {
		return backends.ObjectInfo{}, b.fail(op, key, err)
	}
	if !fi.IsDir() {
		return backends.ObjectInfo{}, b.notExist(op, key, fmt.Sprintf("%s is not a directory", p))
	}
	m, ok, err := b.readMeta(p, nil)
	if err != nil {
		return backends.ObjectInfo{}, b.fail(op, key, err)
	}
	if !ok || !m.Marker {
		return backends.ObjectInfo{}, b.notExist(op, key, fmt.Sprintf("directory %s is not marked as an object", p))
	}
	return objectInfo(key, fi, m, ok), nil
}

// GetRange opens bytes [offset, offset+length) of the object at key, as
// backends.Backend documents. The body reads from the file opened here, so
// it is one version even if the key is replaced meanwhile; its Read fails
// once ctx is done.
func (b *Backend) GetRange(ctx context.Context, key string, offset, length int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, backends.ObjectInfo{}, b.fail("get", key, err)
	}
	if err := b.checkKey("get", key); err != nil {
		return nil, backends.ObjectInfo{}, err
	}
	var f *os.File
	var info backends.ObjectInfo
	var err error
	if strings.HasSuffix(key, "/") {
		info, err = b.statMarker("get", key)
	} else {
		f, info, err = b.open("get", key)
	}
	if err != nil {
		return nil, backends.ObjectInfo{}, err
	}
	closeFile := func() {
		if f != nil {
			f.Close()
		}
	}
	if !opts.IfVersion.IsZero() && opts.IfVersion != info.Version {
		closeFile()
		return nil, backends.ObjectInfo{}, backends.Errorf("get", b.name, key, backends.ErrPrecondition,
			fmt.Errorf("version is %s, the read is pinned to %s", info.Version, opts.IfVersion))
	}
	if offset < 0 || offset > info.Size {
		closeFile()
		return nil, backends.ObjectInfo{}, backends.Errorf("get", b.name, key, backends.ErrInvalidRange,
			fmt.Errorf("offset %d is outside the object's %d bytes", offset, info.Size))
	}
	n := info.Size - offset
	if length >= 0 && length < n {
		n = length
	}
	if f == nil {
		return io.NopCloser(strings.NewReader("")), info, nil
	}
	return &body{ctx: ctx, f: f, r: io.NewSectionReader(f, offset, n), b: b, key: key}, info, nil
}

// body is the reader GetRange returns.
type body struct {
	ctx context.Context
	f   *os.File
	r   *io.SectionReader
	b   *Backend
	key string
}

func (r *body) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, r.b.fail("get", r.key, err)
	}
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.fail("get", r.key, err)
	}
	return n, err
}

func (r *body) Close() error { return r.f.Close() }

// Delete removes the object at key; a missing key, or a directory that is
// no marker, is not an error. For a marker, the directory loses its mark
// and is removed if empty. Directories left empty are removed up to the
// nearest marked one or the root.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return b.fail("delete", key, err)
	}
	if err := b.checkKey("delete", key); err != nil {
		return err
	}
	p := b.path(key)
	if strings.HasSuffix(key, "/") {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || (err == nil && !fi.IsDir()) {
			return nil // no directory, so no marker
		}
		if err != nil {
			return b.fail("delete", key, err)
		}
		err = b.attrs.remove(p)
		if errors.Is(err, errNoAttr) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		if err != nil {
			return b.fail("delete", key, err)
		}
		b.prune(p)
		return nil
	}
	err := syscall.Unlink(p)
	switch {
	case err == nil:
		b.prune(filepath.Dir(p))
		return nil
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR):
		return nil
	}
	return b.fail("delete", key, &os.PathError{Op: "unlink", Path: p, Err: err})
}

// prune removes dir and its parents while they are empty and unmarked,
// stopping at the root. A Put racing with it re-creates what it needs
// (see install).
func (b *Backend) prune(dir string) {
	for dir != b.root && strings.HasPrefix(dir, b.dir) {
		if m, ok, _ := b.readMeta(dir, nil); ok && m.Marker {
			return
		}
		if syscall.Rmdir(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
