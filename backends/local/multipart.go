package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferryio/ferry/backends"
)

// Multipart uploads live in root/.ferry-tmp/uploads/<id>/: upload.json is
// the Upload as CreateUpload returned it, and part-00001 ... part-10000
// are the parts, each written like an object (temporary file, record,
// rename), so a part sent again replaces the old one atomically.
// CompleteUpload concatenates the parts into a temporary file, renames it
// to the key and removes the upload's directory. Nothing below .ferry-tmp
// is ever listed, so nothing is visible at the key before Complete.

const (
	uploadsDir = stagingDir + "/uploads"
	uploadFile = "upload.json"
	partPrefix = "part-"
	maxParts   = 10000
)

// MinPartSize is 1: any part but the last must hold at least one byte.
func (b *Backend) MinPartSize() int64 { return 1 }

// MaxParts is 10,000, as on S3.
func (b *Backend) MaxParts() int { return maxParts }

// uploadDir returns the directory of upload id, or "" when id is not one
// this driver makes (32 hex digits), so that no id reaches outside it.
func (b *Backend) uploadDir(id string) string {
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return ""
	}
	return b.dir + uploadsDir + "/" + id
}

func partName(n int) string { return fmt.Sprintf("%s%05d", partPrefix, n) }

// CreateUpload starts an upload for key; its directory holds upload.json
// once this returns. Keys that Put would refuse are refused here, markers
// included.
func (b *Backend) CreateUpload(ctx context.Context, key string, opts backends.PutOptions) (backends.Upload, error) {
	if err := ctx.Err(); err != nil {
		return backends.Upload{}, b.fail("create-upload", key, err)
	}
	if err := b.checkKey("create-upload", key); err != nil {
		return backends.Upload{}, err
	}
	if strings.HasSuffix(key, "/") {
		return backends.Upload{}, backends.Errorf("create-upload", b.name, key, backends.ErrInvalidKey,
			errors.New("a directory marker holds no bytes and cannot be uploaded in parts"))
	}
	if err := b.conflict("create-upload", key); err != nil {
		return backends.Upload{}, err
	}
	u := backends.Upload{Key: key, ID: newID(), Options: opts, Started: time.Now().UTC()}
	raw, err := json.Marshal(u)
	if err != nil {
		return backends.Upload{}, b.fail("create-upload", key, err)
	}
	dir := b.uploadDir(u.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return backends.Upload{}, b.fail("create-upload", key, err)
	}
	t, err := b.newTemp()
	if err == nil {
		defer t.discard()
		_, err = t.f.Write(raw)
	}
	if err == nil {
		_, err = t.seal(key, meta{})
	}
	if err == nil {
		err = os.Rename(t.path, filepath.Join(dir, uploadFile))
	}
	if err != nil {
		os.RemoveAll(dir)
		return backends.Upload{}, b.fail("create-upload", key, err)
	}
	t.installed = true
	return u, nil
}

// loadUpload returns the directory of u, or ErrNotExist when the store
// holds no upload with u's ID for u's key.
func (b *Backend) loadUpload(op string, u backends.Upload) (string, error) {
	dir := b.uploadDir(u.ID)
	if dir == "" {
		return "", backends.Errorf(op, b.name, u.Key, backends.ErrNotExist, fmt.Errorf("%q is not an upload id of this store", u.ID))
	}
	raw, err := os.ReadFile(filepath.Join(dir, uploadFile))
	if err != nil {
		return "", b.fail(op, u.Key, fmt.Errorf("upload %s: %w", u.ID, err))
	}
	var saved backends.Upload
	if err := json.Unmarshal(raw, &saved); err != nil || saved.Key != u.Key {
		return "", backends.Errorf(op, b.name, u.Key, backends.ErrNotExist, fmt.Errorf("upload %s is not an upload of this key", u.ID))
	}
	return dir, nil
}

// UploadPart stores part n of u, replacing any part n before. The part is
// written to a temporary file and renamed in, so a concurrent ListParts
// sees the old part or the new one, whole. An upload aborted meanwhile
// makes it fail with ErrNotExist.
func (b *Backend) UploadPart(ctx context.Context, u backends.Upload, n int, body io.ReadSeeker, size int64) (backends.Part, error) {
	const op = "upload-part"
	if err := ctx.Err(); err != nil {
		return backends.Part{}, b.fail(op, u.Key, err)
	}
	if n < 1 || n > maxParts || size < 0 {
		return backends.Part{}, backends.Errorf(op, b.name, u.Key, nil,
			fmt.Errorf("part %d of %d bytes: numbers run from 1 to %d and sizes are not negative", n, size, maxParts))
	}
	dir, err := b.loadUpload(op, u)
	if err != nil {
		return backends.Part{}, err
	}
	t, err := b.newTemp()
	if err != nil {
		return backends.Part{}, b.fail(op, u.Key, err)
	}
	defer t.discard()
	if err := t.fill(ctx, body, size); err != nil {
		return backends.Part{}, b.fail(op, u.Key, err)
	}
	info, err := t.seal(u.Key, meta{})
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = os.Rename(t.path, filepath.Join(dir, partName(n)))
	}
	if err != nil {
		return backends.Part{}, b.fail(op, u.Key, err)
	}
	t.installed = true
	return backends.Part{Number: n, Size: size, ETag: info.Version.ETag, CRC32C: t.sums.CRC32C}, nil
}

// ListParts returns the parts of u in ascending number, with the ETag and
// CRC32C that UploadPart returned.
func (b *Backend) ListParts(ctx context.Context, u backends.Upload) ([]backends.Part, error) {
	const op = "list-parts"
	if err := ctx.Err(); err != nil {
		return nil, b.fail(op, u.Key, err)
	}
	dir, err := b.loadUpload(op, u)
	if err != nil {
		return nil, err
	}
	des, err := os.ReadDir(dir) // sorted by name: part-00001 < part-00002 ...
	if err != nil {
		return nil, b.fail(op, u.Key, err)
	}
	var parts []backends.Part
	for _, de := range des {
		n, err := strconv.Atoi(strings.TrimPrefix(de.Name(), partPrefix))
		if !strings.HasPrefix(de.Name(), partPrefix) || err != nil {
			continue
		}
		p := filepath.Join(dir, de.Name())
		fi, err := os.Stat(p)
		var m meta
		var ok bool
		if err == nil {
			m, ok, err = b.readMeta(p, nil)
		}
		if err != nil {
			return nil, b.fail(op, u.Key, err)
		}
		info := objectInfo(u.Key, fi, m, ok)
		parts = append(parts, backends.Part{Number: n, Size: fi.Size(), ETag: info.Version.ETag, CRC32C: info.Checksums.CRC32C})
	}
	return parts, nil
}

// CompleteUpload concatenates parts, which must be in ascending number and
// name parts the store holds (with the same ETag when one is given), into
// the object at u.Key with u.Options' content type and metadata, checking
// u.Options.Checksums against the whole (ErrChecksum, nothing visible, the
// upload kept). On success the upload's directory is removed.
func (b *Backend) CompleteUpload(ctx context.Context, u backends.Upload, parts []backends.Part) (backends.ObjectInfo, error) {
	const op = "complete-upload"
	if err := ctx.Err(); err != nil {
		return backends.ObjectInfo{}, b.fail(op, u.Key, err)
	}
	dir, err := b.loadUpload(op, u)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	if len(parts) == 0 {
		return backends.ObjectInfo{}, backends.Errorf(op, b.name, u.Key, nil, errors.New("no parts to complete the upload with"))
	}
	if err := b.conflict(op, u.Key); err != nil {
		return backends.ObjectInfo{}, err
	}
	t, err := b.newTemp()
	if err != nil {
		return backends.ObjectInfo{}, b.fail(op, u.Key, err)
	}
	defer t.discard()
	h := newHasher()
	for i, p := range parts {
		if i > 0 && p.Number <= parts[i-1].Number {
			return backends.ObjectInfo{}, backends.Errorf(op, b.name, u.Key, nil,
				fmt.Errorf("part %d follows part %d: parts must be in ascending number", p.Number, parts[i-1].Number))
		}
		if err := b.appendPart(ctx, io.MultiWriter(t.f, h), dir, u.Key, p, i == len(parts)-1); err != nil {
			return backends.ObjectInfo{}, b.fail(op, u.Key, err)
		}
	}
	t.sums = h.sums()
	if err := checkSums(u.Options.Checksums, t.sums); err != nil {
		return backends.ObjectInfo{}, backends.Errorf(op, b.name, u.Key, backends.ErrChecksum, err)
	}
	info, err := t.seal(u.Key, meta{ContentType: u.Options.ContentType, Metadata: u.Options.Metadata})
	if err != nil {
		return backends.ObjectInfo{}, b.fail(op, u.Key, err)
	}
	if err := b.install(ctx, t, u.Key); err != nil {
		return backends.ObjectInfo{}, err
	}
	os.RemoveAll(dir)
	return info, nil
}

// appendPart copies part p of the upload in dir to w, after checking that
// it is the part the caller means and large enough unless last.
func (b *Backend) appendPart(ctx context.Context, w io.Writer, dir, key string, p backends.Part, last bool) error {
	path := filepath.Join(dir, partName(p.Number))
	if p.Number < 1 || p.Number > maxParts {
		return fmt.Errorf("part number %d is outside 1..%d", p.Number, maxParts)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("part %d: %w", p.Number, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	var m meta
	var ok bool
	if err == nil {
		m, ok, err = b.readMeta(path, f)
	}
	if err != nil {
		return err
	}
	if etag := objectInfo(key, fi, m, ok).Version.ETag; p.ETag != "" && p.ETag != etag {
		return backends.Errorf("complete-upload", b.name, key, backends.ErrPrecondition,
			fmt.Errorf("part %d was replaced since it was listed (etag %s, now %s)", p.Number, p.ETag, etag))
	}
	if !last && fi.Size() < b.MinPartSize() {
		return fmt.Errorf("part %d holds %d bytes, less than the minimum %d of all parts but the last", p.Number, fi.Size(), b.MinPartSize())
	}
	buf := make([]byte, min(fi.Size(), chunkSize))
	for done := int64(0); done < fi.Size(); {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(f, buf[:min(fi.Size()-done, chunkSize)])
		if err != nil {
			return fmt.Errorf("part %d: %w", p.Number, err)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		done += int64(n)
	}
	return nil
}

// AbortUpload removes the upload's directory and its parts. An unknown
// upload (never created, completed or aborted) is not an error.
func (b *Backend) AbortUpload(ctx context.Context, u backends.Upload) error {
	if err := ctx.Err(); err != nil {
		return b.fail("abort-upload", u.Key, err)
	}
	dir, err := b.loadUpload("abort-upload", u)
	if errors.Is(err, backends.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return b.fail("abort-upload", u.Key, err)
	}
	return nil
}

// ListUploads streams the pending uploads whose key starts with prefix,
// in the order of their IDs.
func (b *Backend) ListUploads(ctx context.Context, prefix string) iter.Seq2[backends.Upload, error] {
	return func(yield func(backends.Upload, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(backends.Upload{}, b.fail("list-uploads", prefix, err))
			return
		}
		des, err := os.ReadDir(b.dir + uploadsDir)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			yield(backends.Upload{}, b.fail("list-uploads", prefix, err))
			return
		}
		for _, de := range des {
			if err := ctx.Err(); err != nil {
				yield(backends.Upload{}, b.fail("list-uploads", prefix, err))
				return
			}
			dir := b.uploadDir(de.Name())
			if dir == "" {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(dir, uploadFile))
			var u backends.Upload
			if err != nil || json.Unmarshal(raw, &u) != nil {
				continue // being created, or removed, meanwhile
			}
			if strings.HasPrefix(u.Key, prefix) && !yield(u, nil) {
				return
			}
		}
	}
}
