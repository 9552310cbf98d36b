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

// chunkSize is how much Put copies between two looks at its context.
const chunkSize = 1 << 20

// installTries bounds the retries of a rename whose parent directory a
// concurrent Delete pruned between MkdirAll and the rename.
const installTries = 5

// Put stores size bytes read from body at key, as backends.Backend
// documents: the bytes go to a temporary file, which gets its record (see
// meta.go), is fsynced and renamed over the key. opts.Checksums are
// verified against the bytes (ErrChecksum). A key ending in "/" makes a
// directory marker and size must be 0. Keys that would need a file where a
// directory is (or the reverse) fail with ErrInvalidKey before any byte is
// read. On any error, including a cancelled ctx, the key is left as it was
// and the temporary file is removed.
func (b *Backend) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return backends.ObjectInfo{}, b.fail("put", key, err)
	}
	if err := b.checkKey("put", key); err != nil {
		return backends.ObjectInfo{}, err
	}
	if size < 0 {
		return backends.ObjectInfo{}, backends.Errorf("put", b.name, key, nil, fmt.Errorf("negative size %d", size))
	}
	if strings.HasSuffix(key, "/") {
		return b.putMarker(key, size, opts)
	}
	if err := b.conflict("put", key); err != nil {
		return backends.ObjectInfo{}, err
	}
	t, err := b.newTemp()
	if err != nil {
		return backends.ObjectInfo{}, b.fail("put", key, err)
	}
	defer t.discard()
	if err := t.fill(ctx, body, size); err != nil {
		return backends.ObjectInfo{}, b.fail("put", key, err)
	}
	if err := checkSums(opts.Checksums, t.sums); err != nil {
		return backends.ObjectInfo{}, backends.Errorf("put", b.name, key, backends.ErrChecksum, err)
	}
	info, err := t.seal(key, meta{ContentType: opts.ContentType, Metadata: opts.Metadata})
	if err != nil {
		return backends.ObjectInfo{}, b.fail("put", key, err)
	}
	if err := b.install(ctx, t, key); err != nil {
		return backends.ObjectInfo{}, err
	}
	return info, nil
}

// putMarker makes the directory of a marker key and marks it.
func (b *Backend) putMarker(key string, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	if size != 0 {
		return backends.ObjectInfo{}, backends.Errorf("put", b.name, key, backends.ErrInvalidKey,
			fmt.Errorf(`a key ending in "/" is a directory marker and holds no bytes, not %d`, size))
	}
	sums := newHasher().sums()
	if err := checkSums(opts.Checksums, sums); err != nil {
		return backends.ObjectInfo{}, backends.Errorf("put", b.name, key, backends.ErrChecksum, err)
	}
	if err := b.conflict("put", key); err != nil {
		return backends.ObjectInfo{}, err
	}
	p := b.path(key)
	m := meta{
		Nonce: newID(), Marker: true, MD5: sums.MD5, CRC32C: sums.CRC32C,
		ContentType: opts.ContentType, Metadata: opts.Metadata,
	}
	for try := 1; ; try++ {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return backends.ObjectInfo{}, b.fail("put", key, err)
		}
		fi, err := os.Stat(p)
		var stored bool
		if err == nil {
			stored, err = b.writeMeta(p, nil, m)
		}
		if errors.Is(err, fs.ErrNotExist) && try < installTries {
			continue // pruned by a concurrent Delete: make it again
		}
		if err != nil {
			return backends.ObjectInfo{}, b.fail("put", key, err)
		}
		syncDir(filepath.Dir(p))
		if !stored {
			m = meta{} // degraded: a plain directory, as Stat will see it
		}
		return objectInfo(key, fi, m, stored), nil
	}
}

// conflict returns an ErrInvalidKey error when key cannot be created
// because a directory is where its file would go, a file is where its
// marker directory would go, or a file is where a parent directory is
// needed.
func (b *Backend) conflict(op, key string) error {
	p := b.path(key)
	marker := strings.HasSuffix(key, "/")
	fi, err := os.Lstat(p)
	if err == nil {
		isDir := fi.IsDir()
		if isDir == marker {
			return nil // replacing a file, or marking a directory
		}
		if marker && fi.Mode()&fs.ModeSymlink != 0 {
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				return nil
			}
		}
		why := fmt.Sprintf("%s is a directory holding other objects, so it cannot also be a file", p)
		if marker {
			why = fmt.Sprintf("%s is a file (the object %q), so it cannot also be a directory", p, strings.TrimSuffix(key, "/"))
		}
		return backends.Errorf(op, b.name, key, backends.ErrInvalidKey, errors.New(why))
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return b.fail(op, key, err)
	}
	for dir := filepath.Dir(p); dir != b.root && strings.HasPrefix(dir, b.dir); dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		switch {
		case err == nil && fi.IsDir():
			return nil
		case err == nil:
			return backends.Errorf(op, b.name, key, backends.ErrInvalidKey,
				fmt.Errorf("%s is a file (the object %q), so it cannot be a directory holding this key",
					dir, strings.TrimPrefix(dir, b.dir)))
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return b.fail(op, key, err)
		}
	}
	return nil
}

// install renames the sealed temporary file to key's file, making parent
// directories, and fsyncs the parent. ctx is checked before the rename:
// once renamed, the write has happened.
func (b *Backend) install(ctx context.Context, t *temp, key string) error {
	p := b.path(key)
	for try := 1; ; try++ {
		if err := ctx.Err(); err != nil {
			return b.fail("put", key, err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
				return b.conflict("put", key) // a file appeared where a directory is needed
			}
			return b.fail("put", key, err)
		}
		err := os.Rename(t.path, p)
		if err == nil {
			break
		}
		if errors.Is(err, fs.ErrNotExist) && try < installTries {
			continue // the parent was pruned by a concurrent Delete
		}
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, fs.ErrExist) {
			if cerr := b.conflict("put", key); cerr != nil {
				return cerr
			}
		}
		return b.fail("put", key, err)
	}
	t.installed = true
	syncDir(filepath.Dir(p))
	return nil
}

// syncDir fsyncs a directory so that a rename into it is durable. Errors
// are ignored: the rename has happened and is visible either way.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// temp is a temporary file in the staging directory on its way to become
// an object or a part.
type temp struct {
	b         *Backend
	f         *os.File // nil once closed
	path      string
	sums      backends.Checksums
	installed bool // renamed into place: nothing to remove
}

// newTemp creates an empty temporary file in the staging directory.
func (b *Backend) newTemp() (*temp, error) {
	dir := b.dir + stagingDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "put-"+newID())
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return nil, err
	}
	return &temp{b: b, f: f, path: p}, nil
}

// fill appends exactly size bytes of src to the file, looking at ctx
// between chunks, and computes their checksums. A body shorter than size
// fails with io.ErrUnexpectedEOF; bytes past size are not read.
func (t *temp) fill(ctx context.Context, src io.Reader, size int64) error {
	h := newHasher()
	w := io.MultiWriter(t.f, h)
	buf := make([]byte, min(size, chunkSize))
	for done := int64(0); done < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(src, buf[:min(size-done, chunkSize)])
		if _, werr := w.Write(buf[:n]); werr != nil {
			return werr
		}
		done += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("the body ended after %d of %d bytes: %w", done, size, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return fmt.Errorf("reading the body: %w", err)
		}
	}
	t.sums = h.sums()
	return ctx.Err()
}

// seal writes m, completed with the file's size, mtime, checksums and a
// fresh nonce, as the file's record, fsyncs and closes the file, and
// returns the info key will have once the file is renamed to it.
func (t *temp) seal(key string, m meta) (backends.ObjectInfo, error) {
	fi, err := t.f.Stat()
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	m.Nonce = newID()
	m.Size = fi.Size()
	m.MTime = fi.ModTime().UnixNano()
	m.MD5, m.CRC32C = t.sums.MD5, t.sums.CRC32C
	stored, err := t.b.writeMeta(t.path, t.f, m)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	if err := t.f.Sync(); err != nil {
		return backends.ObjectInfo{}, err
	}
	err = t.f.Close()
	t.f = nil
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	if !stored {
		m = meta{} // as Stat will see it
	}
	return objectInfo(key, fi, m, stored), nil
}

// discard closes the file and removes it unless it was installed.
func (t *temp) discard() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	if !t.installed {
		os.Remove(t.path)
	}
}
