package gcs

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"cloud.google.com/go/storage"

	"github.com/ferryio/ferry/backends"
)

// maxChunk is the largest upload buffer: smaller objects go in one request,
// larger ones in a resumable upload of chunks of this size.
const maxChunk = 16 << 20

// Put stores the object (see backends.Backend).
//
// The body is read twice: a first pass computes its CRC32C and MD5 (and
// fails with ErrChecksum, sending nothing, when they differ from
// opts.Checksums); the second pass uploads it with both declared, so that
// the store rejects the object unless it received exactly those bytes. The
// object only becomes visible when the upload's last request succeeds; any
// error cancels the upload.
func (b *Backend) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return backends.ObjectInfo{}, b.fail(ctx, "put", key, err)
	}
	attrs, err := b.put(ctx, key, body, size, opts)
	if err != nil {
		return backends.ObjectInfo{}, b.fail(ctx, "put", key, err)
	}
	return toInfo(attrs), nil
}

// put uploads any object, reserved keys included; errors are not wrapped.
func (b *Backend) put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (*storage.ObjectAttrs, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative size %d", size)
	}
	start, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	crc, sum, err := digest(body, size)
	if err != nil {
		return nil, err
	}
	if want := opts.Checksums.CRC32C; len(want) > 0 && !bytes.Equal(want, crcBytes(crc)) {
		return nil, errKind(backends.ErrChecksum, "body has crc32c %x, caller gave %x", crcBytes(crc), want)
	}
	if want := opts.Checksums.MD5; len(want) > 0 && !bytes.Equal(want, sum) {
		return nil, errKind(backends.ErrChecksum, "body has md5 %x, caller gave %x", sum, want)
	}
	if _, err := body.Seek(start, io.SeekStart); err != nil {
		return nil, err
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A retried write sends the same bytes under the same declared
	// checksums, so retrying is as safe as for idempotent calls.
	w := b.bucket.Object(key).Retryer(storage.WithPolicy(storage.RetryAlways)).NewWriter(wctx)
	w.ChunkSize = int(min(size+1, maxChunk))
	w.ContentType = opts.ContentType
	w.ForceEmptyContentType = opts.ContentType == ""
	w.Metadata = opts.Metadata
	w.CRC32C, w.SendCRC32C = crc, true
	w.MD5 = sum

	sent := crc32.New(castagnoli)
	n, err := io.Copy(w, io.TeeReader(io.LimitReader(body, size), sent))
	if err == nil && n < size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		cancel()
		_ = w.Close()
		return nil, err
	}
	if err := w.Close(); err != nil {
		if sent.Sum32() != crc {
			// The body changed between the passes: the store refused
			// bytes that do not match their declared checksum.
			return nil, errKind(backends.ErrChecksum, "body changed while uploading: %w", err)
		}
		return nil, err
	}
	return w.Attrs(), nil
}

// digest reads exactly size bytes and returns their CRC32C and MD5.
func digest(r io.Reader, size int64) (uint32, []byte, error) {
	c, m := crc32.New(castagnoli), md5.New()
	n, err := io.CopyN(io.MultiWriter(c, m), r, size)
	if err == io.EOF {
		err = fmt.Errorf("body has %d bytes, want %d: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return 0, nil, err
	}
	return c.Sum32(), m.Sum(nil), nil
}

// crcValue decodes a 4-byte big-endian CRC32C.
func crcValue(b []byte) (uint32, bool) {
	if len(b) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}
