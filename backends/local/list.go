package local

import (
	"context"
	"errors"
	"io/fs"
	"iter"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/ferryio/ferry/backends"
)

// List streams every object whose key starts with prefix, in ascending
// byte order of key, as backends.Backend documents. It walks the tree one
// directory at a time, sorting each directory's names as their keys sort
// (a directory "a" as "a/", so "a-b" < "a/x" < "a0"); a marked directory
// is yielded as its "dir/" object before its contents. Memory is bounded
// by the largest directory, not by the number of objects. A prefix that no
// valid key can start with yields nothing.
func (b *Backend) List(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return b.listing(ctx, prefix, true)
}

// ListDir streams one level below prefix with "/" as the delimiter, as
// backends.Backend documents: files as objects, directories as common
// prefixes, and the marker of the directory prefix names (when prefix ends
// in "/") as an object first. A directory that holds nothing is also
// yielded as a prefix (see the package documentation).
func (b *Backend) ListDir(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return b.listing(ctx, prefix, false)
}

func (b *Backend) listing(ctx context.Context, prefix string, recursive bool) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(backends.Entry{}, b.fail("list", prefix, err))
			return
		}
		// dir is the directory key whose names are filtered by rest.
		i := strings.LastIndexByte(prefix, '/')
		dir, rest := prefix[:i+1], prefix[i+1:]
		if dir != "" && (dir[0] == '/' || checkSegments(strings.TrimSuffix(dir, "/")) != "") {
			return // no file can hold such keys
		}
		if dir != "" && rest == "" {
			info, err := b.statMarker("list", dir)
			if err == nil {
				if !yield(backends.Entry{ObjectInfo: info}, nil) {
					return
				}
			} else if !errors.Is(err, backends.ErrNotExist) {
				yield(backends.Entry{}, err)
				return
			}
		}
		w := walker{b: b, ctx: ctx, prefix: prefix, recursive: recursive, yield: yield}
		w.walk(dir, rest)
	}
}

// walker is one listing in progress.
type walker struct {
	b         *Backend
	ctx       context.Context
	prefix    string // as the caller gave it, for errors
	recursive bool
	yield     func(backends.Entry, error) bool
}

// dirent is one name of a directory, with whether it is a directory.
type dirent struct {
	name  string
	isDir bool
}

// sortKey is how the entry's keys sort within their directory.
func (d dirent) sortKey() string {
	if d.isDir {
		return d.name + "/"
	}
	return d.name
}

// walk yields the entries of the directory dir (a key: "" or ending in
// "/") whose names start with rest, recursing into directories when the
// walk is recursive. It returns false once the walk must stop.
func (w *walker) walk(dir, rest string) bool {
	ents, err := w.readDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return true // nothing there: an empty listing
		}
		return w.yield(backends.Entry{}, w.b.fail("list", w.prefix, err))
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.name, rest) {
			continue
		}
		if err := w.ctx.Err(); err != nil {
			w.yield(backends.Entry{}, w.b.fail("list", w.prefix, err))
			return false
		}
		key := dir + e.name
		if !e.isDir {
			if !w.file(key) {
				return false
			}
			continue
		}
		if !w.recursive {
			if !w.yield(backends.Entry{ObjectInfo: backends.ObjectInfo{Key: key + "/"}, IsPrefix: true}, nil) {
				return false
			}
			continue
		}
		info, err := w.b.statMarker("list", key+"/")
		switch {
		case err == nil:
			if !w.yield(backends.Entry{ObjectInfo: info}, nil) {
				return false
			}
		case !errors.Is(err, backends.ErrNotExist):
			w.yield(backends.Entry{}, err)
			return false
		}
		if !w.walk(key+"/", "") {
			return false
		}
	}
	return true
}

// file yields the object of a file found by readDir. A file that vanished
// since is skipped.
func (w *walker) file(key string) bool {
	p := w.b.path(key)
	fi, err := os.Stat(p)
	var m meta
	var ok bool
	if err == nil {
		m, ok, err = w.b.readMeta(p, nil)
	}
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
		return true
	}
	if err != nil {
		return w.yield(backends.Entry{}, w.b.fail("list", w.prefix, err))
	}
	return w.yield(backends.Entry{ObjectInfo: objectInfo(key, fi, m, ok)}, nil)
}

// readDir returns the regular files and directories in dir (a key), in
// the byte order of the keys they hold. Symlinks count as what they point
// to, except that symlinks to directories are left out (no loops). The
// staging directory is left out.
func (w *walker) readDir(dir string) ([]dirent, error) {
	p := w.b.dir + dir
	des, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	ents := make([]dirent, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if dir == "" && name == stagingDir {
			continue
		}
		switch t := de.Type(); {
		case t.IsDir():
			ents = append(ents, dirent{name: name, isDir: true})
		case t.IsRegular():
			ents = append(ents, dirent{name: name})
		case t&fs.ModeSymlink != 0:
			if fi, err := os.Stat(p + name); err == nil && fi.Mode().IsRegular() {
				ents = append(ents, dirent{name: name})
			}
		}
	}
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.sortKey(), b.sortKey()) })
	return ents, nil
}
