package store

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/ferryio/ferry/fs/namespace"
)

// fileState identifies one state of a local file: if size, mtime and inode
// are unchanged, ferry takes the content to be unchanged.
type fileState struct {
	Size    int64
	ModTime time.Time
	Ino     uint64
	Mode    fs.FileMode
}

func stateOf(fi fs.FileInfo) fileState {
	st := fileState{Size: fi.Size(), ModTime: fi.ModTime(), Mode: fi.Mode()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.Ino = sys.Ino
	}
	return st
}

// localItem is one thing to store: a regular file, or an empty directory
// (Dir) that becomes a "dir/" marker.
type localItem struct {
	Rel string // relative OS path
	Key string // key relative to the prefix; ends in "/" for Dir
	Dir bool
	fileState
}

// scanResult is what scan found under the root.
type scanResult struct {
	Items []localItem // files and empty-directory markers, by key
	// Dirs holds the marker key ("dir/") of every local directory, empty
	// or not, so that --delete keeps markers of directories that exist.
	Dirs map[string]bool
	// Skipped are the relative paths left out, each with the reason.
	Skipped []skipped
}

type skipped struct{ Rel, Reason string }

// scan walks root. It leaves out the excluded absolute paths (the journal
// directory), symlinks, special files and names that cannot be keys, each
// reported in Skipped.
func scan(ctx context.Context, root string, exclude []string) (scanResult, error) {
	res := scanResult{Dirs: map[string]bool{}}
	var dirs []localItem
	hasChild := map[string]bool{} // marker keys of directories under which something is stored
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path == root {
			return nil
		}
		if slices.Contains(exclude, path) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		skip := func(reason string) error {
			res.Skipped = append(res.Skipped, skipped{Rel: rel, Reason: reason})
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		key := namespace.KeyFor(rel, d.IsDir())
		if !utf8.ValidString(key) {
			return skip("name is not valid UTF-8, so it cannot be an object key")
		}
		if _, err := namespace.PathFor(key); err != nil {
			return skip(err.Error())
		}
		switch t := d.Type(); {
		case t&fs.ModeSymlink != 0:
			return skip("symbolic link (ferry stores regular files and directories only)")
		case t.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			res.Dirs[key] = true
			st := stateOf(fi)
			st.Size = 0 // a marker is empty
			dirs = append(dirs, localItem{Rel: rel, Key: key, Dir: true, fileState: st})
			return nil
		case !t.IsRegular():
			return skip("not a regular file (" + t.String() + ")")
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		res.Items = append(res.Items, localItem{Rel: rel, Key: key, fileState: stateOf(fi)})
		markParents(hasChild, key)
		return nil
	})
	if err != nil {
		return scanResult{}, fmt.Errorf("scan %s: %w", root, err)
	}
	// A directory gets a marker when nothing is stored under it; deepest
	// first, so that a marker makes its parents non-empty in turn.
	slices.SortFunc(dirs, func(a, b localItem) int { return strings.Compare(b.Key, a.Key) })
	for _, d := range dirs {
		if !hasChild[d.Key] {
			res.Items = append(res.Items, d)
			markParents(hasChild, d.Key)
		}
	}
	slices.SortFunc(res.Items, func(a, b localItem) int { return strings.Compare(a.Key, b.Key) })
	return res, nil
}

// markParents records every directory above key (a file or marker key) as
// holding something.
func markParents(hasChild map[string]bool, key string) {
	k := strings.TrimSuffix(key, "/")
	for {
		i := strings.LastIndexByte(k, '/')
		if i < 0 {
			return
		}
		k = k[:i]
		if hasChild[k+"/"] {
			return
		}
		hasChild[k+"/"] = true
	}
}
