package gcs

// Multipart uploads on GCS, which has no multipart API that outlives a
// process in the JSON library. An upload is a folder of plain objects under
// the reserved prefix:
//
//	.ferry-uploads/<id>/upload.json       the backends.Upload, as JSON
//	.ferry-uploads/<id>/part-00001        part 1, and so on (5 digits)
//	.ferry-uploads/<id>/compose-<l>-<i>   intermediate compositions
//	.ferry-uploads/<id>/compose-final     the whole object, before checks
//
// CompleteUpload composes the parts (at most 32 sources per compose, so in
// a tree) into compose-final, checks its CRC32C (and MD5) against the
// upload's options, and only then copies it to the key in one rewrite: the
// key never shows a partial or wrong object. It then deletes the folder,
// upload.json last, so that a crash leaves the upload discoverable by
// ListUploads and removable by AbortUpload.
//
// Part objects are never visible through List or ListDir. Uploads that are
// never completed nor aborted stay until AbortUpload removes them (GCS does
// not expire them on its own; a lifecycle rule on the prefix can).

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
)

const (
	// reservedPrefix holds the multipart uploads; reservedEnd is the
	// smallest key after every key that starts with it.
	reservedPrefix = ".ferry-uploads/"
	reservedEnd    = ".ferry-uploads0"

	uploadFile = "upload.json"
	maxParts   = 10000
	// maxCompose is the largest number of sources of one compose call.
	maxCompose = 32
	// cleanupLimit bounds concurrent deletes and composes.
	cleanupLimit = 8
)

// MinPartSize is 1: composing has no minimum part size.
func (b *Backend) MinPartSize() int64 { return 1 }

// MaxParts is 10000.
func (b *Backend) MaxParts() int { return maxParts }

func uploadDir(id string) string { return reservedPrefix + id + "/" }

func partKey(id string, n int) string { return fmt.Sprintf("%spart-%05d", uploadDir(id), n) }

// validID reports whether id is one that CreateUpload makes (32 lower-case
// hex digits), so that no id can reach outside its own folder.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// CreateUpload records a new upload for key in its upload.json.
func (b *Backend) CreateUpload(ctx context.Context, key string, opts backends.PutOptions) (backends.Upload, error) {
	if err := checkKey(key); err != nil {
		return backends.Upload{}, b.fail(ctx, "create-upload", key, err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return backends.Upload{}, b.fail(ctx, "create-upload", key, err)
	}
	u := backends.Upload{Key: key, ID: hex.EncodeToString(raw[:]), Options: opts, Started: time.Now().UTC()}
	data, err := json.Marshal(u)
	if err != nil {
		return backends.Upload{}, b.fail(ctx, "create-upload", key, err)
	}
	if _, err := b.put(ctx, uploadDir(u.ID)+uploadFile, bytes.NewReader(data), int64(len(data)),
		backends.PutOptions{ContentType: "application/json"}); err != nil {
		return backends.Upload{}, b.fail(ctx, "create-upload", key, err)
	}
	return u, nil
}

// loadUpload checks that u is a pending upload for u.Key: ErrNotExist
// otherwise.
func (b *Backend) loadUpload(ctx context.Context, u backends.Upload) error {
	if !validID(u.ID) {
		return errKind(backends.ErrNotExist, "upload id %q", u.ID)
	}
	saved, err := b.readUpload(ctx, uploadDir(u.ID)+uploadFile)
	if err != nil {
		return err
	}
	if saved.Key != u.Key || saved.ID != u.ID {
		return errKind(backends.ErrNotExist, "upload %s is for key %q", u.ID, saved.Key)
	}
	return nil
}

func (b *Backend) readUpload(ctx context.Context, name string) (backends.Upload, error) {
	r, err := b.bucket.Object(name).NewReader(ctx)
	if err != nil {
		return backends.Upload{}, err
	}
	defer r.Close()
	var u backends.Upload
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&u); err != nil {
		return backends.Upload{}, fmt.Errorf("%s: %w", name, err)
	}
	return u, nil
}

// UploadPart stores part n as its own object, its CRC32C and MD5 checked by
// the store. Part.ETag is the part object's generation.
func (b *Backend) UploadPart(ctx context.Context, u backends.Upload, n int, body io.ReadSeeker, size int64) (backends.Part, error) {
	if n < 1 || n > maxParts {
		return backends.Part{}, b.fail(ctx, "upload-part", u.Key, fmt.Errorf("part number %d out of 1..%d", n, maxParts))
	}
	if err := b.loadUpload(ctx, u); err != nil {
		return backends.Part{}, b.fail(ctx, "upload-part", u.Key, err)
	}
	attrs, err := b.put(ctx, partKey(u.ID, n), body, size, backends.PutOptions{})
	if err != nil {
		return backends.Part{}, b.fail(ctx, "upload-part", u.Key, err)
	}
	return toPart(n, toInfo(attrs)), nil
}

func toPart(n int, info backends.ObjectInfo) backends.Part {
	return backends.Part{Number: n, Size: info.Size, ETag: info.Version.ID, CRC32C: info.Checksums.CRC32C}
}

// ListParts lists the part objects of the upload, in ascending number.
func (b *Backend) ListParts(ctx context.Context, u backends.Upload) ([]backends.Part, error) {
	if err := b.loadUpload(ctx, u); err != nil {
		return nil, b.fail(ctx, "list-parts", u.Key, err)
	}
	parts, err := b.listParts(ctx, u.ID)
	if err != nil {
		return nil, b.fail(ctx, "list-parts", u.Key, err)
	}
	return parts, nil
}

func (b *Backend) listParts(ctx context.Context, id string) ([]backends.Part, error) {
	var (
		parts []backends.Part
		lerr  error
	)
	pre := uploadDir(id) + "part-"
	b.list(ctx, &storage.Query{Prefix: pre}, func(e backends.Entry, err error) bool {
		if err != nil {
			lerr = err
			return false
		}
		n, err := strconv.Atoi(strings.TrimPrefix(e.Key, pre))
		if err == nil && n >= 1 && n <= maxParts {
			parts = append(parts, toPart(n, e.ObjectInfo))
		}
		return true
	})
	return parts, lerr
}

// CompleteUpload composes the parts into u.Key (see the top of this file).
// A part that is not stored returns ErrNotExist, a part whose ETag is not
// the stored one's ErrPrecondition, a whole-object checksum mismatch
// ErrChecksum; in all three cases u.Key is untouched and the upload stays.
func (b *Backend) CompleteUpload(ctx context.Context, u backends.Upload, parts []backends.Part) (backends.ObjectInfo, error) {
	info, err := b.complete(ctx, u, parts)
	if err != nil {
		return backends.ObjectInfo{}, b.fail(ctx, "complete-upload", u.Key, err)
	}
	return info, nil
}

func (b *Backend) complete(ctx context.Context, u backends.Upload, parts []backends.Part) (backends.ObjectInfo, error) {
	if err := b.loadUpload(ctx, u); err != nil {
		return backends.ObjectInfo{}, err
	}
	if len(parts) == 0 {
		attrs, err := b.put(ctx, u.Key, bytes.NewReader(nil), 0, u.Options)
		if err != nil {
			return backends.ObjectInfo{}, err
		}
		b.release(ctx, u.ID)
		return toInfo(attrs), nil
	}
	srcs, err := b.partSources(ctx, u.ID, parts)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	dir := uploadDir(u.ID)
	for level := 0; len(srcs) > maxCompose; level++ {
		next := make([]*storage.ObjectHandle, (len(srcs)+maxCompose-1)/maxCompose)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(cleanupLimit)
		for i := range next {
			group := srcs[i*maxCompose : min((i+1)*maxCompose, len(srcs))]
			name := fmt.Sprintf("%scompose-%d-%05d", dir, level, i)
			g.Go(func() error {
				attrs, err := b.compose(gctx, name, group, backends.PutOptions{})
				if err == nil {
					next[i] = b.bucket.Object(name).Generation(attrs.Generation)
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return backends.ObjectInfo{}, err
		}
		srcs = next
	}
	whole, err := b.compose(ctx, dir+"compose-final", srcs, u.Options)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	wholeObj := b.bucket.Object(whole.Name).Generation(whole.Generation)
	if err := b.verify(ctx, wholeObj, whole, u.Options.Checksums); err != nil {
		return backends.ObjectInfo{}, err
	}
	cp := b.bucket.Object(u.Key).CopierFrom(wholeObj)
	cp.ContentType = u.Options.ContentType
	cp.Metadata = u.Options.Metadata
	attrs, err := cp.Run(ctx)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	b.release(ctx, u.ID)
	return toInfo(attrs), nil
}

// partSources checks the requested parts against the stored ones and
// returns handles pinned to the stored generations.
func (b *Backend) partSources(ctx context.Context, id string, parts []backends.Part) ([]*storage.ObjectHandle, error) {
	stored, err := b.listParts(ctx, id)
	if err != nil {
		return nil, err
	}
	byNumber := make(map[int]backends.Part, len(stored))
	for _, p := range stored {
		byNumber[p.Number] = p
	}
	srcs := make([]*storage.ObjectHandle, len(parts))
	for i, p := range parts {
		if i > 0 && p.Number <= parts[i-1].Number {
			return nil, fmt.Errorf("parts not in ascending order: %d after %d", p.Number, parts[i-1].Number)
		}
		have, ok := byNumber[p.Number]
		switch {
		case !ok:
			return nil, errKind(backends.ErrNotExist, "part %d is not stored", p.Number)
		case p.ETag != "" && p.ETag != have.ETag:
			return nil, errKind(backends.ErrPrecondition, "part %d is generation %s, not %s", p.Number, have.ETag, p.ETag)
		}
		gen, err := strconv.ParseInt(have.ETag, 10, 64)
		if err != nil {
			return nil, err
		}
		srcs[i] = b.bucket.Object(partKey(id, p.Number)).Generation(gen)
	}
	return srcs, nil
}

// compose writes the concatenation of srcs to name. Composing into a
// private name again is harmless, so it is retried like idempotent calls.
func (b *Backend) compose(ctx context.Context, name string, srcs []*storage.ObjectHandle, opts backends.PutOptions) (*storage.ObjectAttrs, error) {
	c := b.bucket.Object(name).Retryer(storage.WithPolicy(storage.RetryAlways)).ComposerFrom(srcs...)
	c.ContentType = opts.ContentType
	c.Metadata = opts.Metadata
	return c.Run(ctx)
}

// verify checks the composed object against the upload's checksums. GCS
// keeps no MD5 for composed objects: then an MD5 is checked by reading the
// object back.
func (b *Backend) verify(ctx context.Context, obj *storage.ObjectHandle, attrs *storage.ObjectAttrs, want backends.Checksums) error {
	if c, ok := crcValue(want.CRC32C); ok && c != attrs.CRC32C {
		return errKind(backends.ErrChecksum, "composed object has crc32c %x, upload wants %x", crcBytes(attrs.CRC32C), want.CRC32C)
	} else if !ok && len(want.CRC32C) > 0 {
		return errKind(backends.ErrChecksum, "upload crc32c %x is not 4 bytes", want.CRC32C)
	}
	if len(want.MD5) == 0 {
		return nil
	}
	sum := attrs.MD5
	if len(sum) == 0 {
		r, err := obj.NewReader(ctx)
		if err != nil {
			return err
		}
		defer r.Close()
		h := md5.New()
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		sum = h.Sum(nil)
	}
	if !bytes.Equal(sum, want.MD5) {
		return errKind(backends.ErrChecksum, "composed object has md5 %x, upload wants %x", sum, want.MD5)
	}
	return nil
}

// AbortUpload deletes every object of the upload, upload.json last.
func (b *Backend) AbortUpload(ctx context.Context, u backends.Upload) error {
	if !validID(u.ID) {
		return nil
	}
	if err := b.deleteUpload(ctx, u.ID); err != nil {
		return b.fail(ctx, "abort-upload", u.Key, err)
	}
	return nil
}

// release deletes a completed upload's folder. The object is complete
// whatever happens here: on failure upload.json stays, so that the rest
// can be found with ListUploads and removed with AbortUpload.
func (b *Backend) release(ctx context.Context, id string) {
	_ = b.deleteUpload(ctx, id)
}

func (b *Backend) deleteUpload(ctx context.Context, id string) error {
	dir := uploadDir(id)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cleanupLimit)
	var lerr error
	b.list(gctx, &storage.Query{Prefix: dir}, func(e backends.Entry, err error) bool {
		if err != nil {
			lerr = err
			return false
		}
		if e.Key != dir+uploadFile {
			g.Go(func() error { return b.delete(gctx, e.Key) })
		}
		return true
	})
	if err := errors.Join(g.Wait(), lerr); err != nil {
		return err
	}
	return b.delete(ctx, dir+uploadFile)
}

// ListUploads reads the upload.json of every upload folder and yields those
// whose key starts with prefix. Folders without one (being created or
// removed) are skipped.
func (b *Backend) ListUploads(ctx context.Context, prefix string) iter.Seq2[backends.Upload, error] {
	return func(yield func(backends.Upload, error) bool) {
		b.list(ctx, &storage.Query{Prefix: reservedPrefix, Delimiter: "/"}, func(e backends.Entry, err error) bool {
			if err != nil {
				yield(backends.Upload{}, err)
				return false
			}
			if !e.IsPrefix {
				return true
			}
			id := strings.TrimSuffix(strings.TrimPrefix(e.Key, reservedPrefix), "/")
			u, err := b.readUpload(ctx, e.Key+uploadFile)
			switch {
			case errors.Is(err, storage.ErrObjectNotExist) && ctx.Err() == nil:
				return true
			case err != nil:
				yield(backends.Upload{}, b.fail(ctx, "list-uploads", prefix, err))
				return false
			case u.ID != id || !strings.HasPrefix(u.Key, prefix):
				return true
			}
			return yield(u, nil)
		})
	}
}
