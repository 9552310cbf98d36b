package load

import (
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/internal/pagebuf"
)

// Direct writes. A multi-part file is written with O_DIRECT where the
// filesystem allows it: each whole-page chunk goes from the download
// buffer to the device, with no copy into the page cache and nothing left
// for the closing syncfs to write back. On this project's VM a buffered
// write of 1 GiB and its sync took 0.8-1.4 s, the same bytes written
// directly in 256 KiB-1 MiB chunks by 4-8 writers 0.5-0.6 s; and the copy
// into the page cache was most of load's system CPU on large objects.
//
// The file is allocated whole first (fallocate), so that the aligned
// writes of concurrent parts are overwrites of allocated extents, which
// ext4 and xfs let run in parallel under a shared inode lock; into holes
// they would take it exclusively. A chunk that is not whole pages at a
// page offset in page-aligned memory (the tail of the object, a short read
// resumed mid-page) is written through the page cache instead, one at a
// time, as objread would write it: the two never touch the same page,
// since only a file's last chunk or a retry's first is unaligned.

// directFile is a part file being downloaded: an io.WriterAt that writes
// aligned chunks through an O_DIRECT descriptor and the rest through f,
// and an io.ReaderAt over f (verification reads back through the page
// cache, which sees the direct writes). Its WriteAt may be called
// concurrently (objread.ParallelWriterAt).
type directFile struct {
	f  *os.File // the part file, opened by the caller
	d  *os.File // the same file opened O_DIRECT for writing
	mu sync.Mutex
}

// openDirect allocates size bytes to f (the open part file called name
// under r.root, already truncated to size) and opens it again with
// O_DIRECT. It returns nil, and f is to be written as usual, where the
// filesystem has no fallocate or no O_DIRECT (tmpfs, some FUSE and
// network filesystems); and an error when the disk has no room for the
// file, before anything is fetched.
func (r *runner) openDirect(name string, f *os.File, size int64) (*directFile, error) {
	if r.opts.noDirect {
		return nil, nil
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
			return nil, &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
		}
		return nil, nil
	}
	d, err := r.root.OpenFile(name, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil, nil
	}
	return &directFile{f: f, d: d}, nil
}

// ParallelWrites tells objread that WriteAt may be called concurrently.
func (w *directFile) ParallelWrites() {}

// WriteAt writes p at off, directly when p is whole pages at a page
// offset in page-aligned memory.
func (w *directFile) WriteAt(p []byte, off int64) (int, error) {
	if len(p) > 0 && off%pagebuf.Size == 0 && len(p)%pagebuf.Size == 0 && pagebuf.Aligned(p) {
		n, err := w.d.WriteAt(p, off)
		if !errors.Is(err, unix.EINVAL) {
			return n, err
		}
		// A device with a larger logical block than a page: write this
		// chunk through the page cache.
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.WriteAt(p, off)
}

// ReadAt reads through f.
func (w *directFile) ReadAt(p []byte, off int64) (int, error) { return w.f.ReadAt(p, off) }

// Close closes the O_DIRECT descriptor (f stays open).
func (w *directFile) Close() error { return w.d.Close() }
