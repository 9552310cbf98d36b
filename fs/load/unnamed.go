package load

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// A single-part object that is missing from the destination is written to
// an unnamed file (O_TMPFILE) in its own directory, which gets its name
// (linkat) only once complete, verified and stamped. A kill leaves nothing
// behind, and the files of each directory are created in it: ext4 places a
// new inode near its directory, so a download of many small files into one
// work directory crowds a single block group, whose inode bitmap the
// allocator then scans past the inodes of earlier runs (1.5 s of system
// CPU more for 10,000 files, measured). Where O_TMPFILE or /proc is
// missing, the object goes through a named file in WorkDir as others do.

// unnamed is an unnamed file being written, in dir (a directory of the
// destination, opened).
type unnamed struct {
	f       *os.File
	dir     *os.File
	dirPath string // for errors
}

// openUnnamed creates an unnamed file in directory dir of the
// destination. It returns nil, and nil, where the filesystem or the
// system cannot: the caller then uses a named file.
func (r *runner) openUnnamed(dir string) (*unnamed, error) {
	if r.noUnnamed.Load() {
		return nil, nil
	}
	d, err := r.root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(int(d.Fd()), ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if err != nil {
		d.Close()
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			r.noUnnamed.Store(true)
			return nil, nil
		}
		return nil, &fs.PathError{Op: "open O_TMPFILE", Path: filepath.Join(r.dir, dir), Err: err}
	}
	p := filepath.Join(r.dir, dir)
	return &unnamed{f: os.NewFile(uintptr(fd), filepath.Join(p, "(unnamed)")), dir: d, dirPath: p}, nil
}

// procPath is the /proc path through which f's inode is reached.
func (u *unnamed) procPath() string { return "/proc/self/fd/" + strconv.Itoa(int(u.f.Fd())) }

// chtimes sets the file's access and modification times.
func (u *unnamed) chtimes(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.UtimesNano(u.procPath(), []unix.Timespec{ts, ts}); err != nil {
		return &fs.PathError{Op: "utimensat", Path: u.f.Name(), Err: err}
	}
	return nil
}

// link names the file base in its directory. Should something have taken
// that name meanwhile (the run holds DATA_DIR's lock, so only another
// program can), the file is linked under a temporary name and renamed over
// it; a kill between the two leaves that ".ferry-" name behind.
func (u *unnamed) link(base string) error {
	dfd := int(u.dir.Fd())
	err := unix.Linkat(unix.AT_FDCWD, u.procPath(), dfd, base, unix.AT_SYMLINK_FOLLOW)
	if !errors.Is(err, unix.EEXIST) {
		return linkError(u, base, err)
	}
	tmp := ".ferry-" + rand.Text()
	if err := unix.Linkat(unix.AT_FDCWD, u.procPath(), dfd, tmp, unix.AT_SYMLINK_FOLLOW); err != nil {
		return linkError(u, tmp, err)
	}
	if err := unix.Renameat(dfd, tmp, dfd, base); err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return &fs.PathError{Op: "rename", Path: filepath.Join(u.dirPath, base), Err: err}
	}
	return nil
}

func linkError(u *unnamed, name string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: "link", Path: filepath.Join(u.dirPath, name), Err: err}
}

// close closes the file (dropping it, unless linked) and its directory.
func (u *unnamed) close() error {
	return errors.Join(u.f.Close(), u.dir.Close())
}
