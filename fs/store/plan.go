package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/journal"
	"github.com/ferryio/ferry/fs/objmeta"
)

// plan is what a run has to do.
type plan struct {
	uploads []*upload
	deletes []string          // keys to delete (Options.Delete)
	aborts  []backends.Upload // pending uploads to abort
	done    []string          // journal keys that need nothing more
}

// upload is one file or marker to store.
type upload struct {
	item localItem
	sums backends.Checksums // zero for markers
	// resume is the journal entry of an earlier run's upload of this very
	// file state, to be continued.
	resume *journal.Entry
}

// decision is plan's verdict on one local item: up to date, or an upload.
type decision struct {
	upToDate bool
	gone     bool // the file vanished since the scan
	up       *upload
}

// plan compares the local items with the listing (see the package doc, "Up
// to date"), hashing files with at most Concurrency at once, and collects
// the deletions and the uploads to abort.
func (r *runner) plan(ctx context.Context, local scanResult, remote map[string]backends.ObjectInfo) (*plan, error) {
	decisions := make([]decision, len(local.Items))
	err := r.each(ctx, len(local.Items), func(ctx context.Context, i int) error {
		it := local.Items[i]
		obj, listed := remote[it.Key]
		d, err := r.decide(ctx, it, obj, listed)
		if errors.Is(err, fs.ErrNotExist) {
			d, err = decision{gone: true}, nil
		}
		decisions[i] = d
		return err
	})
	if err != nil {
		return nil, err
	}

	p := &plan{}
	wanted := map[string]bool{}
	abortIDs := map[string]bool{}
	abort := func(u *backends.Upload) {
		if u != nil && !abortIDs[u.ID] {
			abortIDs[u.ID] = true
			p.aborts = append(p.aborts, *u)
		}
	}
	for i, d := range decisions {
		it := local.Items[i]
		prior, hasPrior := r.prior[it.Key]
		switch {
		case d.gone:
			r.event("warning", fmt.Sprintf("%s vanished while planning; not stored", it.Rel), map[string]any{"path": it.Rel})
			r.o.Tracker.AddTotal(-1, -it.Size)
			continue
		case d.upToDate:
			r.o.Tracker.Skipped(it.Size)
			r.count(func(res *Result) { res.UpToDate++ })
			if hasPrior {
				// Its upload, if any, was completed before the run
				// that started it could record it; aborting a
				// completed upload is a no-op that frees leftovers.
				abort(prior.Upload)
				p.done = append(p.done, it.Key)
			}
		default:
			p.uploads = append(p.uploads, d.up)
			if hasPrior && d.up.resume == nil {
				abort(prior.Upload)
			}
		}
		wanted[it.Key] = true
	}
	for _, k := range sortedKeys(r.prior) {
		if !wanted[k] {
			abort(r.prior[k].Upload)
			p.done = append(p.done, k)
		}
	}
	if r.o.Delete {
		for _, k := range sortedKeys(remote) {
			if k != "" && !wanted[k] && !local.Dirs[k] {
				p.deletes = append(p.deletes, k)
			}
		}
	}
	if err := r.abandoned(ctx, p, abort); err != nil {
		return nil, err
	}
	return p, nil
}

// abandoned adds to the aborts the pending uploads under the prefix that
// no planned upload continues, and that the journal had staged the key of
// (ours) or that are older than AbandonedAfter.
func (r *runner) abandoned(ctx context.Context, p *plan, abort func(*backends.Upload)) error {
	if r.mp == nil {
		return nil
	}
	resumed := map[string]bool{}
	for _, u := range p.uploads {
		if u.resume != nil {
			resumed[u.resume.Upload.ID] = true
		}
	}
	for u, err := range r.mp.ListUploads(ctx, "") {
		if err != nil {
			return fmt.Errorf("list pending uploads of %s: %w", r.o.Target, err)
		}
		if resumed[u.ID] {
			continue
		}
		_, ours := r.prior[u.Key]
		if ours || (!u.Started.IsZero() && time.Since(u.Started) > r.o.AbandonedAfter) {
			abort(&u)
		}
	}
	return nil
}

// decide is the "up to date" rule of the package doc for one item.
func (r *runner) decide(ctx context.Context, it localItem, obj backends.ObjectInfo, listed bool) (decision, error) {
	if it.Dir {
		if listed {
			return decision{upToDate: true}, nil
		}
		return decision{up: &upload{item: it}}, nil
	}
	path := filepath.Join(r.o.Dir, it.Rel)
	var (
		sums   backends.Checksums
		resume *journal.Entry
	)
	if p, ok := r.prior[it.Key]; ok && p.Size == it.Size && p.ModTime.Equal(it.ModTime) && p.Inode == it.Ino && len(p.Sums.MD5) > 0 {
		sums = p.Sums
		if p.Upload != nil {
			resume = &p
		}
	}
	rec, recOK := readRecord(path)
	recOK = recOK && rec.matches(it.fileState)
	tid := targetID(r.o.Target, it.Key)
	sameSize := listed && obj.Size == it.Size
	// Rule 1: ferry stored or verified exactly this object for this file.
	if sameSize && recOK && rec.Target == tid && rec.ETag != "" && rec.ETag == obj.Version.ETag {
		return decision{upToDate: true}, nil
	}
	if sums.IsZero() && recOK {
		sums = rec.Sums
	}
	if sums.IsZero() {
		// No sum record is written for these sums here: a file to upload
		// gets its record once stored, an up-to-date one below.
		var err error
		if sums, err = hashFile(ctx, path, it.Size); err != nil {
			return decision{}, fmt.Errorf("hash %s: %w", it.Rel, err)
		}
	}
	up := decision{up: &upload{item: it, sums: sums, resume: resume}}
	if !sameSize {
		return up, nil
	}
	// Rule 2: same content by the store's checksum, and same mtime; from
	// the listing, or from one HEAD where the listing lacks either.
	same, known := sameContent(obj, sums)
	if known && !same {
		return up, nil
	}
	if !known || obj.Metadata == nil {
		st, err := r.o.Store.Stat(ctx, it.Key)
		if errors.Is(err, backends.ErrNotExist) {
			return up, nil
		}
		if err != nil {
			return decision{}, err
		}
		if st.Size != it.Size {
			return up, nil
		}
		if !known {
			if same, known = sameContent(st, sums); !same || !known {
				return up, nil
			}
		}
		obj.Metadata, obj.Version = st.Metadata, st.Version
	}
	if !objmeta.SameMtime(obj.Metadata, it.ModTime) {
		return up, nil
	}
	r.record(path, sumRecord{Size: it.Size, MtimeNS: it.ModTime.UnixNano(), Ino: it.Ino, Sums: sums, Target: tid, ETag: obj.Version.ETag})
	return decision{upToDate: true}, nil
}

// sameContent compares the file's checksums with the object's: its MD5,
// else its CRC32C, else an ETag that is the file's MD5 in hex. known is
// false when none of these settles it.
func sameContent(obj backends.ObjectInfo, sums backends.Checksums) (same, known bool) {
	switch {
	case len(obj.Checksums.MD5) > 0:
		return bytes.Equal(obj.Checksums.MD5, sums.MD5), true
	case len(obj.Checksums.CRC32C) > 0:
		return bytes.Equal(obj.Checksums.CRC32C, sums.CRC32C), true
	case obj.Version.ETag != "" && obj.Version.ETag == hex.EncodeToString(sums.MD5):
		return true, true
	}
	return false, false
}

// record writes a sum record unless this is a dry run.
func (r *runner) record(path string, rec sumRecord) {
	if r.o.DryRun {
		return
	}
	if err := writeRecord(path, rec); err != nil {
		r.o.Logger.Debug("no sum record", "path", path, "err", err)
	}
}

// recordFile writes a sum record on the open file f.
func (r *runner) recordFile(f *os.File, rec sumRecord) {
	if err := writeRecordFile(f, rec); err != nil {
		r.o.Logger.Debug("no sum record", "path", f.Name(), "err", err)
	}
}
