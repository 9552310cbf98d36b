package mount

import (
	"cmp"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/namespace"
)

// object is what the mount keeps of one object: enough to show it and to
// read it pinned to its version. Listings keep one per file, so it is kept
// small (no metadata map, no checksums).
type object struct {
	key     string // relative to the mount's root (the store prefix)
	size    int64
	mtime   time.Time
	version backends.Version
}

func objectOf(info backends.ObjectInfo) object {
	return object{key: info.Key, size: info.Size, mtime: info.ModTime, version: info.Version}
}

func (o object) info() backends.ObjectInfo {
	return backends.ObjectInfo{Key: o.key, Size: o.size, ModTime: o.mtime, Version: o.version}
}

// same reports whether o and p are the same content of the same key. It
// compares identities, not every field: a listing and a Stat may give the
// same version with different mtime precision or extra version fields.
func (o object) same(p object) bool {
	return o.key == p.key && o.size == p.size && o.identity() == p.identity()
}

// identity names the object's content: the ETag where the store gives one
// in listings (s3, az, local, and gcs, which also gives the generation),
// else the version id, else the mtime. It comes out the same whether the
// object was listed or stat'ed, on every store.
func (o object) identity() string {
	switch {
	case o.version.ETag != "":
		return o.version.ETag
	case o.version.ID != "":
		return o.version.ID
	}
	return "mtime:" + strconv.FormatInt(o.mtime.UnixNano(), 10)
}

// versionKey is the Version of the object's blocks in block cache keys,
// so that a remount finds the blocks of unchanged objects: its identity,
// size and the block size (a block index means other bytes with another
// block size).
func (o object) versionKey(blockSize int64) string {
	return o.identity() + "|size:" + strconv.FormatInt(o.size, 10) + "|bs:" + strconv.FormatInt(blockSize, 10)
}

// child is one name in a directory: a subdirectory or a file.
type child struct {
	name string
	dir  bool
	obj  object // files only
}

// listing is one directory as one ListDir call saw it. It is immutable.
type listing struct {
	loaded   time.Time
	children []child // sorted by name, names unique
}

// find returns the child called name.
func (l *listing) find(name string) (child, bool) {
	i, ok := slices.BinarySearchFunc(l.children, name, func(c child, n string) int { return strings.Compare(c.name, n) })
	if !ok {
		return child{}, false
	}
	return l.children[i], true
}

// hiddenFunc is told of each key that cannot be shown, and why.
type hiddenFunc func(key string, reason error)

// buildListing reads the ListDir sequence of directory dir ("" for the
// root, else a key ending in "/") into a listing:
//
//   - the marker object of dir itself is skipped (it is the directory);
//   - objects are files and common prefixes (and marker objects, should a
//     store yield one) are directories, named by the key's last segment;
//   - keys that cannot be file names (namespace.PathFor refuses them: an
//     empty or ".." segment, a segment over 255 bytes...) are hidden and
//     passed to hidden;
//   - a name that is both a file and a directory ("a" and "a/b") is shown
//     as the directory; the file is hidden (namespace.ErrConflict).
//
// The first error of the sequence is returned.
func buildListing(dir string, seq iter.Seq2[backends.Entry, error], now time.Time, hidden hiddenFunc) (*listing, error) {
	var kids []child
	for e, err := range seq {
		if err != nil {
			return nil, err
		}
		c, ok := childOf(dir, e, hidden)
		if ok {
			kids = append(kids, c)
		}
	}
	return &listing{loaded: now, children: dedupe(kids, dir, hidden)}, nil
}

// childOf turns one entry of dir's listing into a child, or reports why
// it cannot be one.
func childOf(dir string, e backends.Entry, hidden hiddenFunc) (child, bool) {
	if !strings.HasPrefix(e.Key, dir) {
		hidden(e.Key, fmt.Errorf("%w: listed outside its directory %q", namespace.ErrUnsafeKey, dir))
		return child{}, false
	}
	if e.Key == dir {
		return child{}, false // dir's own marker
	}
	rel := e.Key[len(dir):]
	isDir := e.IsPrefix || strings.HasSuffix(rel, "/")
	name := strings.TrimSuffix(rel, "/")
	if _, err := namespace.PathFor(e.Key); err != nil {
		hidden(e.Key, err)
		return child{}, false
	}
	if name == "" || strings.Contains(name, "/") {
		hidden(e.Key, fmt.Errorf("%w %q: not one level below %q", namespace.ErrUnsafeKey, e.Key, dir))
		return child{}, false
	}
	if isDir {
		return child{name: name, dir: true}, true
	}
	return child{name: name, obj: objectOf(e.ObjectInfo)}, true
}

// dedupe sorts kids by name and keeps one child per name: a directory
// over a file (the file is hidden as a conflict), the first of two
// directories.
func dedupe(kids []child, dir string, hidden hiddenFunc) []child {
	slices.SortStableFunc(kids, func(a, b child) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		// Directories first, so that they are kept.
		return cmp.Compare(btoi(!a.dir), btoi(!b.dir))
	})
	out := kids[:0]
	for _, c := range kids {
		if n := len(out); n > 0 && out[n-1].name == c.name {
			if !c.dir {
				hidden(c.obj.key, conflict(c.obj.key, dir+c.name+"/"))
			}
			continue
		}
		out = append(out, c)
	}
	return slices.Clip(out)
}

func conflict(file, dirKey string) error {
	return fmt.Errorf("%w: %q is a file and %q a directory; the directory is shown", namespace.ErrConflict, file, dirKey)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
