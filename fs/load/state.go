package load

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/objmeta"
)

// XattrName is the extended attribute in which load records, on each file
// it wrote, which object version the file holds (see record).
const XattrName = "user.ferry.load"

// record is what load knows of a file it wrote: the object's version, size,
// Last-Modified and checksums, and the mtime it gave the file. It is kept as
// JSON in the file's XattrName attribute, so that it travels with the file
// (renames keep it, a rewrite by another program drops it when the program
// replaces the file) and leaves no state file behind.
type record struct {
	Version   backends.Version   `json:"v"`
	Size      int64              `json:"s"`
	Mtime     int64              `json:"m"`            // the file's mtime as set, Unix ns
	ModTime   int64              `json:"lm,omitempty"` // the store's Last-Modified, Unix ns
	Checksums backends.Checksums `json:"c,omitzero"`
}

// localState is what a scan of one destination path found.
type localState struct {
	exists bool
	info   fs.FileInfo
	rec    *record // nil when the file carries none
	// noXattr: the filesystem does not support user extended attributes.
	noXattr bool
}

// readState looks at the file rel (relative to the root at dir). It never
// follows a symlink at rel itself. xattrs false pretends the filesystem
// has none.
func readState(root *os.Root, dir, rel string, xattrs bool) (localState, error) {
	fi, err := root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return localState{}, nil
	}
	if err != nil {
		return localState{}, err
	}
	st := localState{exists: true, info: fi}
	if !fi.Mode().IsRegular() {
		return st, nil
	}
	if !xattrs {
		st.noXattr = true
		return st, nil
	}
	buf := make([]byte, 512)
	for {
		n, err := unix.Lgetxattr(filepath.Join(dir, rel), XattrName, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, 2*len(buf))
			continue
		case errors.Is(err, unix.ENODATA):
			return st, nil
		case errors.Is(err, unix.ENOTSUP):
			st.noXattr = true
			return st, nil
		case err != nil:
			return st, &fs.PathError{Op: "getxattr", Path: rel, Err: err}
		}
		var rec record
		if json.Unmarshal(buf[:n], &rec) == nil {
			st.rec = &rec
		}
		return st, nil
	}
}

// writeRecord stores rec on the open file f. It returns false, without
// error, when the filesystem has no user extended attributes.
func writeRecord(f *os.File, rec record) (bool, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	err = unix.Fsetxattr(int(f.Fd()), XattrName, b, 0)
	if errors.Is(err, unix.ENOTSUP) {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "setxattr", Path: f.Name(), Err: err}
	}
	return true, nil
}

// sameVersion reports whether a and b name the same content: every field
// both carry is equal, and they share at least one.
func sameVersion(a, b backends.Version) bool {
	shared := false
	if a.ETag != "" && b.ETag != "" {
		if a.ETag != b.ETag {
			return false
		}
		shared = true
	}
	if a.ID != "" && b.ID != "" {
		if a.ID != b.ID {
			return false
		}
		shared = true
	}
	return shared
}

// mergeVersion adds to v the fields of served that v lacks (a version id
// that only a GET returns), when both name the same content.
func mergeVersion(v, served backends.Version) backends.Version {
	if !sameVersion(v, served) {
		return v
	}
	if v.ETag == "" {
		v.ETag = served.ETag
	}
	if v.ID == "" {
		v.ID = served.ID
	}
	return v
}

// staleReason says why the local file does not hold the listed object, or
// "" when it is up to date. With a record (the normal case) the file must
// still have the size and mtime load gave it, and the record must name the
// listed version (or, for a store without versions, its size and
// Last-Modified). Without extended attributes (st.noXattr) the fallback is
// the listing alone: the size, and the mtime the object's metadata names
// when the listing carries it, else the store's Last-Modified; when the
// listing has no metadata (S3) and the mtime is neither, the file counts as
// loaded when its ctime is not older than the object's Last-Modified, i.e.
// it was written after the object was.
func staleReason(st localState, obj backends.ObjectInfo) string {
	switch {
	case !st.exists:
		return "missing"
	case st.info.IsDir():
		return "a directory is in the way"
	case !st.info.Mode().IsRegular():
		return "not a regular file"
	case st.info.Size() != obj.Size:
		return "size differs"
	}
	mtime := st.info.ModTime()
	if st.noXattr {
		if t, ok := objmeta.ParseMtime(obj.Metadata); ok {
			if !mtime.Equal(t) {
				return "mtime differs"
			}
			return ""
		}
		if mtime.Equal(obj.ModTime) || !ctime(st.info).Before(obj.ModTime) {
			return ""
		}
		return "older than the object"
	}
	rec := st.rec
	switch {
	case rec == nil:
		return "not written by ferry load"
	case rec.Size != obj.Size:
		return "size differs"
	case !obj.Version.IsZero() && !sameVersion(rec.Version, obj.Version):
		return "object changed"
	case obj.Version.IsZero() && (obj.ModTime.IsZero() || rec.ModTime != obj.ModTime.UnixNano()):
		return "object changed"
	case mtime.UnixNano() != rec.Mtime:
		return "mtime differs"
	}
	return ""
}

func ctime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return fi.ModTime()
}

// fileTimes returns the mtime and permission bits to give the file of an
// object: the mtime user metadata (rclone's "mtime", or gsutil's
// goog-reserved-file-mtime) when present, else the store's Last-Modified;
// the "mode" metadata's permission bits when present, else 0644.
func fileTimes(info backends.ObjectInfo) (time.Time, fs.FileMode) {
	mtime, ok := objmeta.ParseMtime(info.Metadata)
	if !ok {
		mtime = info.ModTime
	}
	mode, ok := objmeta.ParseMode(info.Metadata)
	if !ok {
		mode = 0o644
	}
	return mtime, mode
}
