// Package namespace maps object keys to safe relative paths and back, and
// checks a listing for keys that cannot all become files of one directory
// tree. load (which writes files) and mount (which shows them) both go
// through it, so they agree on which keys are valid.
//
// Keys here are relative to the store prefix (as seen through
// backends/prefix). A key names a file; a key ending in "/" is a directory
// marker and names a directory.
package namespace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sentinel errors; test them with errors.Is.
var (
	// ErrUnsafeKey: the key cannot be turned into a path inside the
	// destination directory (empty, absolute, "..", NUL, over-long name,
	// ...). The message names the key and the reason.
	ErrUnsafeKey = errors.New("unsafe key")
	// ErrConflict: two keys want the same path as a file and as a
	// directory ("a" and "a/b"). The message names both keys.
	ErrConflict = errors.New("conflicting keys")
	// ErrUnsorted: a listing handed to Checker or Plan was not in strictly
	// ascending key order, so conflicts could not be detected.
	ErrUnsorted = errors.New("listing not in ascending key order")
)

// MaxNameLen is the longest path segment (file or directory name) accepted,
// in bytes: NAME_MAX on Linux and most filesystems.
const MaxNameLen = 255

// Entry is a key and the relative path it maps to.
type Entry struct {
	// Key is the object key relative to the store prefix.
	Key string
	// Path is the safe relative OS path (filepath.FromSlash form). It is
	// filepath.IsLocal and has no trailing separator, also for directories.
	Path string
	// Dir is true when Key ends in "/": a directory marker (or an
	// implicit directory from a delimited listing).
	Dir bool
}

// PathFor returns the entry for key: its safe relative path and whether it
// names a directory. It refuses, with an error wrapping ErrUnsafeKey that
// names the key and the reason:
//
//   - the empty key (this is also what the object at the prefix itself
//     becomes, e.g. "data/" under prefix "data/"; callers decide whether
//     to skip it) and the key "/";
//   - a key containing a NUL byte;
//   - an absolute key (leading "/");
//   - a "." or ".." segment, or an empty segment ("a//b");
//   - a segment longer than MaxNameLen bytes;
//   - a segment containing the OS path separator when that is not "/"
//     (a backslash on Windows); on Linux and macOS a backslash is an
//     ordinary character of a file name and is accepted;
//   - anything filepath.IsLocal rejects (on Windows: drive letters,
//     reserved names such as NUL or COM1), as a last guard.
//
// Other bytes (control characters, invalid UTF-8, ":", spaces) are accepted:
// POSIX file names may hold them. PathFor does not check letter case, so on
// case-insensitive filesystems "A" and "a" still collide.
func PathFor(key string) (Entry, error) {
	unsafe := func(reason string) (Entry, error) {
		return Entry{}, fmt.Errorf("%w %q: %s", ErrUnsafeKey, key, reason)
	}
	switch {
	case key == "":
		return unsafe("empty key")
	case strings.IndexByte(key, 0) >= 0:
		return unsafe("contains a NUL byte")
	case key[0] == '/':
		return unsafe("absolute key (leading \"/\")")
	}
	dir := strings.HasSuffix(key, "/")
	rel := strings.TrimSuffix(key, "/")
	for seg := range strings.SplitSeq(rel, "/") {
		switch {
		case seg == "":
			return unsafe("empty path segment")
		case seg == "." || seg == "..":
			return unsafe(fmt.Sprintf("%q segment", seg))
		case len(seg) > MaxNameLen:
			return unsafe(fmt.Sprintf("segment of %d bytes (longest allowed is %d)", len(seg), MaxNameLen))
		case os.PathSeparator != '/' && strings.ContainsRune(seg, os.PathSeparator):
			return unsafe(fmt.Sprintf("segment contains the path separator %q", os.PathSeparator))
		}
	}
	path := filepath.FromSlash(rel)
	if !filepath.IsLocal(path) || filepath.Clean(path) != path {
		return unsafe("not a local path on this system")
	}
	return Entry{Key: key, Path: path, Dir: dir}, nil
}

// KeyFor is the reverse of PathFor, for uploads: the key (relative to the
// store prefix) of the relative path relPath, "/"-separated, with a "/"
// suffix when dir is true. relPath is cleaned first; the root "." (or "")
// maps to "" whatever dir says, meaning the prefix itself. KeyFor does not
// validate: pass paths found by walking the directory, and for any local,
// clean relPath PathFor(KeyFor(relPath, dir)) gives back relPath and dir.
func KeyFor(relPath string, dir bool) string {
	p := filepath.Clean(relPath)
	if p == "." {
		return ""
	}
	key := filepath.ToSlash(p)
	if dir {
		key += "/"
	}
	return key
}
