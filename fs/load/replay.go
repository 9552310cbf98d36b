package load

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
)

// Replay (Options.Manifest): which objects are read how.
//
//   - An object the listing shows at the manifest's size, version and
//     checksums is read like any other, pinned to that version (If-Match
//     on s3, the generation on gcs), which needs no permission beyond
//     reading the current object.
//   - An object changed or gone since the manifest whose entry carries a
//     version id is "exact": read with backends.ReadOptions.Exact at the
//     recorded id, and verified against the manifest's size and
//     checksums. Before anything is fetched or deleted, one request per
//     exact object still to fetch (a zero-length exact read: a HEAD on s3,
//     the generation's attributes on gcs) checks that the store holds that
//     version and that it is the manifest's; if any is not, the run fails
//     with ErrSnapshotChanged naming each such key. A file whose record
//     names the recorded version is up to date without a request of its
//     own, as in any run; on a filesystem without user extended
//     attributes an exact object is always fetched (nothing else says
//     which version the file holds).
//   - An object changed or gone whose entry has no version id (unversioned
//     s3 buckets, az, local) fails the run, naming the key, before
//     anything is fetched.
//
// Directory markers are checked against the listing the same way, but one
// changed or gone whose entry has a version id is taken as it is, without
// a request: it only stands for a directory. A dry run makes no request
// for exact objects: it reports them as fetches.

// checkManifest lists the store and checks every object of the manifest
// against it. It returns the manifest's objects in ascending key order,
// each completed with what the listing knows and pinned to the recorded
// version, and the set of keys to read exactly (see above); or an error
// wrapping ErrSnapshotChanged that names every key that changed or is
// gone and has no version id.
func (r *runner) checkManifest(ctx context.Context) ([]backends.ObjectInfo, map[string]bool, error) {
	want := map[string]ManifestObject{}
	for _, o := range r.opts.Manifest.Objects {
		want[o.Key] = o
	}
	listed := map[string]backends.ObjectInfo{}
	for e, err := range r.list(ctx) {
		if err != nil {
			return nil, nil, fmt.Errorf("list %s: %w", r.b, err)
		}
		if _, ok := want[e.Key]; ok {
			listed[e.Key] = e.ObjectInfo
		}
	}
	var objs []backends.ObjectInfo
	exact := map[string]bool{}
	var bad []error
	for _, o := range r.opts.Manifest.Objects {
		cur, ok := listed[o.Key]
		var change string
		switch {
		case !ok:
			change = "not in the store any more"
		case cur.Size != o.Size, !cur.Version.IsZero() && !o.Version.IsZero() && !sameVersion(cur.Version, o.Version):
			change = fmt.Sprintf("changed since the manifest (now version %s, %d bytes; manifest %s, %d bytes)",
				cur.Version, cur.Size, o.Version, o.Size)
		case !sameSums(cur.Checksums, o.Checksums):
			change = "changed since the manifest (checksums differ)"
		}
		switch {
		case change != "" && o.Version.ID == "":
			bad = append(bad, fmt.Errorf("%q: %s", o.Key, change))
			continue
		case change != "":
			exact[o.Key] = true
			cur = backends.ObjectInfo{Key: o.Key, Size: o.Size, Version: o.Version, Checksums: o.Checksums}
		default:
			// The listed version stands, without the manifest's id when the
			// listing has none (s3): an object rewritten with the same
			// bytes keeps its ETag under a new version id, and the reads,
			// pinned by ETag, then serve that id, which the record keeps.
			if cur.Checksums.IsZero() {
				cur.Checksums = o.Checksums
			}
		}
		objs = append(objs, cur)
	}
	if len(bad) > 0 {
		return nil, nil, fmt.Errorf("%w: %w", ErrSnapshotChanged, errors.Join(bad...))
	}
	slices.SortFunc(objs, func(a, b backends.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return objs, exact, nil
}

// probeExact checks, for every exact item of todo, that the store still
// holds the recorded version and that it is the manifest's (size,
// checksums), with one zero-length exact read each, up to Concurrency at
// once. It completes each item with the attributes of that version
// (Last-Modified, user metadata, checksums the manifest lacks). It returns
// an error wrapping ErrSnapshotChanged naming every key whose version is
// gone or differs, or the first other error.
func (r *runner) probeExact(ctx context.Context, todo []*fileItem) error {
	var (
		mu  sync.Mutex
		bad []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Concurrency)
	for _, it := range todo {
		if !it.exact {
			continue
		}
		g.Go(func() error {
			info, err := r.exactInfo(gctx, it.obj)
			var change string
			switch {
			case errors.Is(err, backends.ErrPrecondition):
				change = fmt.Sprintf("changed since the manifest, and the store no longer holds its version %s", it.obj.Version)
			case err != nil:
				return err
			case info.Size != it.obj.Size || !sameVersion(info.Version, it.obj.Version) || !sameSums(info.Checksums, it.obj.Checksums):
				change = fmt.Sprintf("the store's version %s (%d bytes) is not the manifest's %s (%d bytes)",
					info.Version, info.Size, it.obj.Version, it.obj.Size)
			}
			if change != "" {
				mu.Lock()
				bad = append(bad, fmt.Errorf("%q: %s", it.obj.Key, change))
				mu.Unlock()
				return nil
			}
			it.obj.ModTime, it.obj.ContentType, it.obj.Metadata = info.ModTime, info.ContentType, info.Metadata
			it.obj.Version = mergeVersion(it.obj.Version, info.Version)
			if it.obj.Checksums.IsZero() {
				it.obj.Checksums = info.Checksums
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(bad) > 0 {
		slices.SortFunc(bad, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return fmt.Errorf("%w: %w", ErrSnapshotChanged, errors.Join(bad...))
	}
	return nil
}

// exactInfo returns the attributes of exactly the version info names,
// current or not, from a zero-length exact read (the contract has no Stat
// of an old version).
func (r *runner) exactInfo(ctx context.Context, info backends.ObjectInfo) (backends.ObjectInfo, error) {
	rc, st, err := r.b.GetRange(ctx, info.Key, 0, 0, backends.ReadOptions{IfVersion: info.Version, Exact: true})
	if err != nil {
		return st, err
	}
	return st, rc.Close()
}

// sameSums reports whether two sets of checksums agree wherever both know
// the same checksum.
func sameSums(a, b backends.Checksums) bool {
	differ := func(x, y []byte) bool { return len(x) > 0 && len(y) > 0 && string(x) != string(y) }
	return !differ(a.MD5, b.MD5) && !differ(a.CRC32C, b.CRC32C) && !differ(a.CRC32, b.CRC32) && !differ(a.CRC64NVME, b.CRC64NVME)
}
