package local

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// xattrName is the extended attribute holding a meta record (meta.go).
const xattrName = "user.ferry"

// xattrs keeps meta records in the user.ferry extended attribute.
type xattrs struct{}

// get reads the meta attribute of the file at path, following
// symlinks, or of f when f is not nil. A missing attribute, or a
// filesystem without user xattrs, returns errNoAttr.
func (xattrs) get(path string, f *os.File) ([]byte, error) {
	buf := make([]byte, 512)
	for {
		n, err := getRaw(path, f, buf)
		if errors.Is(err, unix.ERANGE) {
			// Larger than buf: ask for the size, then read again.
			if n, err = getRaw(path, f, nil); err == nil {
				buf = make([]byte, n)
				continue
			}
		}
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
			return nil, errNoAttr
		}
		if err != nil {
			return nil, &os.PathError{Op: "getxattr", Path: path, Err: err}
		}
		return buf[:n], nil
	}
}

func getRaw(path string, f *os.File, buf []byte) (int, error) {
	if f == nil {
		return unix.Getxattr(path, xattrName, buf)
	}
	var n int
	var err error
	if cerr := withFd(f, func(fd int) { n, err = unix.Fgetxattr(fd, xattrName, buf) }); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// set writes the meta attribute on f, or on path when f is nil. A
// filesystem without user xattrs returns errNoAttr.
func (xattrs) set(path string, f *os.File, data []byte) error {
	var err error
	if f == nil {
		err = unix.Setxattr(path, xattrName, data, 0)
	} else {
		if cerr := withFd(f, func(fd int) { err = unix.Fsetxattr(fd, xattrName, data, 0) }); cerr != nil {
			err = cerr
		}
	}
	if errors.Is(err, unix.ENOTSUP) {
		return errNoAttr
	}
	if err != nil {
		return &os.PathError{Op: "setxattr", Path: path, Err: err}
	}
	return nil
}

// remove removes the meta attribute of path. A missing attribute
// returns errNoAttr.
func (xattrs) remove(path string) error {
	err := unix.Removexattr(path, xattrName)
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
		return errNoAttr
	}
	if err != nil {
		return &os.PathError{Op: "removexattr", Path: path, Err: err}
	}
	return nil
}

func withFd(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}
