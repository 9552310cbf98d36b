package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/journal"
	"github.com/ferryio/ferry/fs/objmeta"
	"github.com/ferryio/ferry/fs/progress"
)

// FileOptions configure UploadFile and PutMarker.
type FileOptions struct {
	// Store receives the object (keys relative to its prefix).
	Store       backends.Backend
	MtimeFormat objmeta.MtimeFormat
	// PartSize and Concurrency as in Options (0: the defaults).
	PartSize    int64
	Concurrency int
	Logger      *slog.Logger
}

// UploadFile stores the file at path as e.Key, the way Run stores one
// file: one Put, or (past the part size, on a store with the Multipart
// capability) a multipart upload recorded in j, continued from e.Upload
// when j's entry for e.Key carries one. e must be the live entry of j for
// e.Key; e.Sums must be the file's checksums, e.ModTime and e.Mode go to
// the "mtime" and "mode" metadata. The store's checksums of the new
// object are checked against e.Sums (a mismatch deletes it and fails with
// backends.ErrChecksum). UploadFile does not mark the entry done.
func UploadFile(ctx context.Context, o FileOptions, j *journal.Journal, e journal.Entry, path string) (backends.ObjectInfo, error) {
	r := newFileRunner(o, j)
	f, err := os.Open(path)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	defer f.Close()
	u := &upload{item: localItem{Rel: path, Key: e.Key, fileState: fileState{Size: e.Size, ModTime: e.ModTime,
		Mode: fs.FileMode(e.Mode) & fs.ModePerm}}, sums: e.Sums}
	if e.Upload != nil {
		u.resume = &e
	}
	opts := backends.PutOptions{ContentType: objmeta.ContentType(e.Key),
		Metadata: objmeta.Metadata(o.MtimeFormat, e.ModTime, u.item.Mode), Checksums: e.Sums}
	var info backends.ObjectInfo
	if ps, multi := r.partSize(u); multi {
		info, err = r.multipart(ctx, f, u, opts, ps)
	} else {
		info, err = r.put(ctx, e.Key, io.NewSectionReader(f, 0, e.Size), e.Size, opts)
	}
	if err == nil {
		err = r.verify(ctx, e.Key, info, e.Sums)
	}
	return info, err
}

// PutMarker stores the directory marker key ("dir/") with the given mtime
// and permission bits, as Run stores the marker of an empty directory.
func PutMarker(ctx context.Context, o FileOptions, key string, mtime time.Time, perm fs.FileMode) (backends.ObjectInfo, error) {
	sum := md5.Sum(nil)
	opts := backends.PutOptions{ContentType: dirContentType,
		Metadata:  objmeta.Metadata(o.MtimeFormat, mtime, fs.ModeDir|perm&fs.ModePerm),
		Checksums: backends.Checksums{MD5: sum[:], CRC32C: emptyCRC32C}}
	info, err := o.Store.Put(ctx, key, bytes.NewReader(nil), 0, opts)
	if err != nil {
		return info, fmt.Errorf("store %s: %w", key, err)
	}
	return info, nil
}

// HashFile returns the MD5 and CRC32C of the file at path, as UploadFile
// wants them in Entry.Sums.
func HashFile(ctx context.Context, path string) (backends.Checksums, error) {
	return hashFile(ctx, path, -1)
}

// newFileRunner is a runner for single-file uploads outside Run.
func newFileRunner(o FileOptions, j *journal.Journal) *runner {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &runner{o: Options{Store: o.Store, MtimeFormat: o.MtimeFormat, PartSize: o.PartSize,
		Concurrency: o.Concurrency, Tracker: &progress.Tracker{}, Logger: o.Logger}, j: j,
		sem: semaphore.NewWeighted(int64(o.Concurrency))}
	r.mp, _ = o.Store.(backends.Multipart)
	return r
}
