package load

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/walk"
	"github.com/ferryio/ferry/fs/namespace"
)

// plan is what a run has to do, from the listing (or the manifest) and a
// scan of the destination.
type plan struct {
	files   []*fileItem           // every loadable file object, in listing order
	markers []backends.ObjectInfo // directory markers, for the manifest
	dirs    []string              // every directory to have (markers and parents), parents first
	acts    map[string]dirAction  // what each of dirs needs
	invalid []error               // keys that cannot be loaded, each error naming its key
}

// reserved reports whether key lies in the work directory's name.
func reserved(key string) bool {
	return key == WorkDir || key == WorkDir+"/" || strings.HasPrefix(key, WorkDir+"/")
}

// scanHooks are called by scan as it goes. Either may be nil.
type scanHooks struct {
	// dir is called with each directory of the plan as it first appears
	// (its action decided, its parents handed over before it).
	dir func(d string) error
	// file is called with each file once its reason is set.
	file func(it *fileItem) error
}

// scan lists the store (or, in replay, takes the manifest after checking
// it against the listing), maps every key through namespace, decides each
// directory's action as it first appears and compares each file with the
// destination (setting its reason), filling p and calling h as it goes: a
// run can fetch the first files while later directories are still being
// listed. An error of h stops the scan and is returned.
func (r *runner) scan(ctx context.Context, p *plan, h scanHooks) error {
	src := r.list(ctx)
	var exact map[string]bool
	if r.opts.Manifest != nil {
		objs, ex, err := r.checkManifest(ctx)
		if err != nil {
			return err
		}
		exact = ex
		src = func(yield func(backends.Entry, error) bool) {
			for _, o := range objs {
				if !yield(backends.Entry{ObjectInfo: o}, nil) {
					return
				}
			}
		}
	}
	p.acts = map[string]dirAction{}
	for it, err := range namespace.Plan(src) {
		if err != nil {
			return fmt.Errorf("list %s: %w", r.b, err)
		}
		key := it.Object.Key
		switch {
		case key == "" || it.Object.IsPrefix:
			// the object at the prefix itself (a "prefix/" marker): the root
		case reserved(key):
			p.invalid = append(p.invalid, fmt.Errorf("%w %q: %s is ferry load's work directory", ErrReservedKey, key, WorkDir))
			r.invalidKey(p.invalid[len(p.invalid)-1])
		case it.Err != nil:
			p.invalid = append(p.invalid, it.Err)
			r.invalidKey(it.Err)
		case it.Dir:
			p.markers = append(p.markers, it.Object.ObjectInfo)
			if err := r.addDirs(p, it.Path, h.dir); err != nil {
				return err
			}
		default:
			f := &fileItem{obj: it.Object.ObjectInfo, path: it.Path, exact: exact[key]}
			if err := r.addDirs(p, filepath.Dir(it.Path), h.dir); err != nil {
				return err
			}
			if err := r.scanFile(f, p.acts); err != nil {
				return err
			}
			p.files = append(p.files, f)
			if h.file != nil {
				if err := h.file(f); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (r *runner) invalidKey(err error) {
	r.notify(Event{Level: slog.LevelWarn, Kind: EventInvalidKey, Msg: "not loaded: " + err.Error(), Err: err})
}

// addDirs adds dir and those of its parents (not the root) that p does
// not have yet, parents first, each with its action (see dirActionOf),
// handing each to fn when set.
func (r *runner) addDirs(p *plan, dir string, fn func(string) error) error {
	var chain []string
	for ; dir != "." && dir != ""; dir = filepath.Dir(dir) {
		if _, ok := p.acts[dir]; ok {
			break
		}
		chain = append(chain, dir)
	}
	for _, d := range slices.Backward(chain) {
		p.acts[d] = r.dirActionOf(p.acts, d)
		p.dirs = append(p.dirs, d)
		if fn != nil {
			if err := fn(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// dirAction is what a directory of the plan needs.
type dirAction int

const (
	dirOK      dirAction = iota
	dirCreate            // missing
	dirReplace           // a symlink, or (with Delete) a file, is in the way
	dirBlocked           // a file is in the way and Delete is off
)

// dirActionOf decides what directory d needs, its parents' actions in acts.
func (r *runner) dirActionOf(acts map[string]dirAction, d string) dirAction {
	if r.root == nil || underAction(acts, d) {
		return dirCreate
	}
	fi, err := r.root.Lstat(d)
	switch {
	case err != nil:
		return dirCreate
	case fi.IsDir():
		return dirOK
	case fi.Mode()&fs.ModeSymlink != 0 || r.opts.Delete:
		return dirReplace
	default:
		return dirBlocked
	}
}

// underAction reports whether a parent of d is to be created or replaced
// (so d cannot exist yet) or is blocked.
func underAction(acts map[string]dirAction, d string) bool {
	for p := filepath.Dir(d); p != "." && p != "/"; p = filepath.Dir(p) {
		if a, ok := acts[p]; ok && a != dirOK {
			return true
		}
	}
	return false
}

// blockedBy returns the blocked directory above path, or "".
func blockedBy(acts map[string]dirAction, path string) string {
	for p := filepath.Dir(path); p != "." && p != "/"; p = filepath.Dir(p) {
		if acts[p] == dirBlocked {
			return p
		}
	}
	return ""
}

// scanFile compares a file of the plan with the destination and sets its
// reason ("" when up to date) and the directory blocking it, if any.
func (r *runner) scanFile(it *fileItem, acts map[string]dirAction) error {
	it.blocked = blockedBy(acts, it.path)
	if r.root == nil || underAction(acts, it.path) {
		it.reason = "missing"
		return nil
	}
	st, err := readState(r.root, r.dir, it.path, r.xattrs.Load())
	if err != nil {
		return err
	}
	it.reason = staleReason(st, it.obj)
	if it.reason == "" && it.exact && st.rec == nil {
		// Without a record nothing says which version the file holds,
		// and the listing's attributes are another version's.
		it.reason = "no record of the version it holds"
	}
	if it.reason == "" {
		it.rec = st.rec
		if it.rec == nil { // no xattrs: what the listing says
			it.rec = &record{Version: it.obj.Version, Size: it.obj.Size, Checksums: it.obj.Checksums}
		}
	}
	return nil
}

// makeDir creates or replaces the planned directory d. A directory a file
// blocks is reported, and comes back as blocked, a failure of the run,
// when it is the topmost of its blocked tree (the files beneath fail on
// their own).
func (r *runner) makeDir(d string, acts map[string]dirAction) (blocked, err error) {
	switch acts[d] {
	case dirBlocked:
		if blockedBy(acts, d) == "" {
			blocked = fmt.Errorf("%s: a file is in the way of this directory (--delete replaces it)", d)
			r.notify(Event{Level: slog.LevelError, Kind: EventFailed, Msg: blocked.Error(), Err: blocked})
			return blocked, nil
		}
	case dirReplace:
		if err := r.root.RemoveAll(d); err != nil {
			return nil, err
		}
		fallthrough
	case dirCreate:
		if blockedBy(acts, d) != "" {
			return nil, nil
		}
		if err := r.root.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	return nil, nil
}

// prune removes, with Delete, every entry of the destination that the plan
// does not name (the work directory excepted). It returns the relative
// paths removed, or in a dry run the paths it would remove.
func (r *runner) prune(p *plan, dryRun bool) ([]string, error) {
	if r.root == nil {
		return nil, nil
	}
	keep := make(map[string]bool, len(p.files)+len(p.dirs))
	for _, it := range p.files {
		keep[it.path] = true
	}
	for _, d := range p.dirs {
		keep[d] = true
	}
	var gone []string
	err := fs.WalkDir(r.root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.FromSlash(name)
		switch {
		case name == ".":
			return nil
		case name == WorkDir:
			return fs.SkipDir
		case keep[rel]:
			return nil
		}
		gone = append(gone, rel)
		if !dryRun {
			if err := r.root.RemoveAll(rel); err != nil {
				return err
			}
		}
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil
	})
	return gone, err
}

// loaded lists what the destination holds after the run (markers, and the
// files that are up to date or were fetched) in ascending key order.
func (p *plan) loaded() iter.Seq[ManifestObject] {
	return func(yield func(ManifestObject) bool) {
		objs := make([]ManifestObject, 0, len(p.markers)+len(p.files))
		for _, m := range p.markers {
			objs = append(objs, ManifestObject{Key: m.Key, Size: m.Size, Version: m.Version, Checksums: m.Checksums})
		}
		for _, it := range p.files {
			if it.rec == nil {
				continue
			}
			objs = append(objs, ManifestObject{Key: it.obj.Key, Size: it.rec.Size, Version: it.rec.Version, Checksums: it.rec.Checksums})
		}
		slices.SortFunc(objs, func(a, b ManifestObject) int { return strings.Compare(a.Key, b.Key) })
		for _, o := range objs {
			if !yield(o) {
				return
			}
		}
	}
}

// list streams the store's listing of the prefix, directories listed
// Concurrency at a time (see package walk): one LIST per directory, in the
// order and with the contract of Backend.List.
func (r *runner) list(ctx context.Context) iter.Seq2[backends.Entry, error] {
	return walk.List(ctx, r.b, "", walk.Options{Concurrency: r.opts.Concurrency})
}
