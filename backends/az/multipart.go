package az

// Multipart uploads are staged blocks of the blob at the upload's key.
//
// Upload.ID is a random nonce of 16 hex digits. Every block the driver
// stages is named base64(nonce + 8 characters), so that all block IDs of a
// blob have the same length, as Azure requires: part n is nonce +
// "%08d" of n; CreateUpload stages a one-byte marker block, nonce +
// "00000000", so that the store knows the upload; AbortUpload stages a
// one-byte tombstone, nonce + "!aborted". ListParts reads the blob's
// uncommitted block list: an upload is known while its marker is there and
// its tombstone is not. Put uses the same naming for its own blocks.
//
// Azure cannot delete uncommitted blocks: they disappear when a block list
// is committed on the blob, or after seven days (Azure's documentation says
// a Put Blob discards them too; Azurite keeps them). So AbortUpload only
// makes the upload unknown, and a completed upload (or a Put of more than
// BlockSize) on the same key ends every other upload in progress there:
// ListParts then returns ErrNotExist and the caller starts over.
// Uncommitted blocks are never visible as an object. ListUploads yields
// nothing: finding them would take a Get Block List request per blob under
// the prefix, and they expire on their own.
//
// Parts of zero bytes are not staged (Azure refuses empty blocks):
// UploadPart returns them without a request and CompleteUpload skips parts
// of Size 0.
//
// CompleteUpload checks the whole object against u.Options.Checksums:
//   - a CRC32C is checked before the commit, by combining the parts'
//     CRC32C, when every part carries one (UploadPart returns them; it
//     computes the CRC32C in the same pass as the MD5 the service verifies
//     the part against, so it covers the bytes the service holds);
//   - otherwise (an MD5, or parts from ListParts, which cannot report a
//     CRC32C) the committed object is read back and hashed; on a mismatch it
//     is deleted (only that version) and the call fails with ErrChecksum.
//     The object was visible, and the one it replaced is gone, in between:
//     Azure cannot verify a whole-object checksum before the commit.
//
// A given MD5 is stored as the blob's Content-MD5 once the commit is made.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/ferryio/ferry/backends"
)

const (
	nonceLen     = 16         // hex digits
	markerSuffix = "00000000" // part 0: the upload exists
	abortSuffix  = "!aborted" // the upload was aborted
)

// newNonce returns nonceLen random hex digits.
func newNonce() (string, error) {
	var r [nonceLen / 2]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(r[:]), nil
}

// blockID is the ID of block n (1-based) of the upload or Put with nonce.
func blockID(nonce string, n int) string { return suffixID(nonce, fmt.Sprintf("%08d", n)) }

func suffixID(nonce, suffix string) string {
	return base64.StdEncoding.EncodeToString([]byte(nonce + suffix))
}

// MinPartSize implements backends.Multipart: Azure has no minimum block size.
func (b *Backend) MinPartSize() int64 { return 1 }

// MaxParts implements backends.Multipart: Azure's limit of committed blocks.
func (b *Backend) MaxParts() int { return maxBlocks }

// checkUpload validates u before any request.
func (b *Backend) checkUpload(op string, u backends.Upload) error {
	if err := b.checkKey(op, u.Key); err != nil {
		return err
	}
	if _, err := hex.DecodeString(u.ID); err != nil || len(u.ID) != nonceLen {
		return backends.Errorf(op, b.String(), u.Key, backends.ErrNotExist, fmt.Errorf("malformed upload id %q", u.ID))
	}
	return nil
}

// stageMark stages the one-byte block nonce+suffix.
func (b *Backend) stageMark(ctx context.Context, key, nonce, suffix string) error {
	mark := []byte(suffix[:1])
	sum := md5.Sum(mark)
	_, err := b.c.NewBlockBlobClient(key).StageBlock(ctx, suffixID(nonce, suffix),
		streaming.NopCloser(bytes.NewReader(mark)),
		&blockblob.StageBlockOptions{TransactionalValidation: blob.TransferValidationTypeMD5(sum[:])})
	return err
}

// CreateUpload implements backends.Multipart: it stages the upload's marker
// block (one request). opts is kept in the Upload.
func (b *Backend) CreateUpload(ctx context.Context, key string, opts backends.PutOptions) (backends.Upload, error) {
	if err := b.checkKey("create-upload", key); err != nil {
		return backends.Upload{}, err
	}
	if _, err := encodeMetadata(opts.Metadata); err != nil {
		return backends.Upload{}, backends.Errorf("create-upload", b.String(), key, nil, err)
	}
	nonce, err := newNonce()
	if err != nil {
		return backends.Upload{}, backends.Errorf("create-upload", b.String(), key, nil, err)
	}
	if err := b.stageMark(ctx, key, nonce, markerSuffix); err != nil {
		return backends.Upload{}, b.fail(ctx, "create-upload", key, err)
	}
	opts.Metadata = maps.Clone(opts.Metadata)
	return backends.Upload{Key: key, ID: nonce, Options: opts, Started: time.Now().UTC()}, nil
}

// UploadPart implements backends.Multipart with Put Block. The part's MD5,
// computed in a first pass over body, is sent for the service to verify;
// the returned Part carries the part's CRC32C from the same pass. A part of
// zero bytes is returned without a request.
func (b *Backend) UploadPart(ctx context.Context, u backends.Upload, n int, body io.ReadSeeker, size int64) (backends.Part, error) {
	if err := b.checkUpload("upload-part", u); err != nil {
		return backends.Part{}, err
	}
	if n < 1 || n > maxBlocks || size < 0 || size > maxBlockSize {
		return backends.Part{}, backends.Errorf("upload-part", b.String(), u.Key, nil,
			fmt.Errorf("part %d of %d bytes outside Azure's limits (%d parts of at most %d bytes)", n, size, maxBlocks, int64(maxBlockSize)))
	}
	if err := ctx.Err(); err != nil {
		return backends.Part{}, b.fail(ctx, "upload-part", u.Key, err)
	}
	start, d, err := hashBody(ctx, body, size, 0)
	if err != nil {
		return backends.Part{}, b.fail(ctx, "upload-part", u.Key, err)
	}
	part := backends.Part{Number: n, Size: size, CRC32C: d.crc32c}
	if size == 0 {
		return part, nil
	}
	_, err = b.c.NewBlockBlobClient(u.Key).StageBlock(ctx, blockID(u.ID, n), backends.NewSection(body, start, size),
		&blockblob.StageBlockOptions{TransactionalValidation: blob.TransferValidationTypeMD5(d.md5)})
	if err != nil {
		return backends.Part{}, b.fail(ctx, "upload-part", u.Key, err)
	}
	return part, nil
}

// heldParts returns the sizes of the parts the store holds for u, by
// number; ErrNotExist when the upload is unknown or aborted.
func (b *Backend) heldParts(ctx context.Context, op string, u backends.Upload) (map[int]int64, error) {
	if err := b.checkUpload(op, u); err != nil {
		return nil, err
	}
	list, err := b.c.NewBlockBlobClient(u.Key).GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	if err != nil {
		return nil, b.fail(ctx, op, u.Key, err)
	}
	held := map[int]int64{}
	known := false
	for _, blk := range list.UncommittedBlocks {
		if blk.Name == nil || blk.Size == nil {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(*blk.Name)
		if err != nil || len(raw) != nonceLen+len(markerSuffix) || string(raw[:nonceLen]) != u.ID {
			continue // another upload's, or another tool's
		}
		switch suffix := string(raw[nonceLen:]); suffix {
		case markerSuffix:
			known = true
		case abortSuffix:
			return nil, backends.Errorf(op, b.String(), u.Key, backends.ErrNotExist, errors.New("upload was aborted"))
		default:
			if n, err := strconv.Atoi(suffix); err == nil && n >= 1 {
				held[n] = *blk.Size
			}
		}
	}
	if !known {
		return nil, backends.Errorf(op, b.String(), u.Key, backends.ErrNotExist, errors.New("no such upload (never created, completed, aborted or superseded)"))
	}
	return held, nil
}

// ListParts implements backends.Multipart with Get Block List. Parts carry
// no CRC32C: the block list does not record one.
func (b *Backend) ListParts(ctx context.Context, u backends.Upload) ([]backends.Part, error) {
	held, err := b.heldParts(ctx, "list-parts", u)
	if err != nil {
		return nil, err
	}
	parts := make([]backends.Part, 0, len(held))
	for _, n := range slices.Sorted(maps.Keys(held)) {
		parts = append(parts, backends.Part{Number: n, Size: held[n]})
	}
	return parts, nil
}

// CompleteUpload implements backends.Multipart with Put Block List, after
// checking with Get Block List that the upload is known and holds every
// part with its size (ErrNotExist otherwise). See the top of this file for
// how the whole-object checksum is verified.
func (b *Backend) CompleteUpload(ctx context.Context, u backends.Upload, parts []backends.Part) (backends.ObjectInfo, error) {
	const op = "complete-upload"
	held, err := b.heldParts(ctx, op, u)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	var ids []string
	var size int64
	var crc uint32
	allCRC := true
	for i, p := range parts {
		if p.Number < 1 || p.Number > maxBlocks || i > 0 && p.Number <= parts[i-1].Number {
			return backends.ObjectInfo{}, backends.Errorf(op, b.String(), u.Key, nil, fmt.Errorf("part %d out of order or range", p.Number))
		}
		if p.Size == 0 {
			continue
		}
		if got, ok := held[p.Number]; !ok || got != p.Size {
			return backends.ObjectInfo{}, backends.Errorf(op, b.String(), u.Key, backends.ErrNotExist,
				fmt.Errorf("the store holds no part %d of %d bytes", p.Number, p.Size))
		}
		ids = append(ids, blockID(u.ID, p.Number))
		if len(p.CRC32C) == 4 {
			crc = crc32cCombine(crc, binary.BigEndian.Uint32(p.CRC32C), p.Size)
		} else {
			allCRC = false
		}
		size += p.Size
	}
	want := u.Options.Checksums
	readBack := len(want.MD5) != 0
	if len(want.CRC32C) != 0 {
		if allCRC {
			if got := binary.BigEndian.AppendUint32(nil, crc); !bytes.Equal(got, want.CRC32C) {
				return backends.ObjectInfo{}, backends.Errorf(op, b.String(), u.Key, backends.ErrChecksum,
					fmt.Errorf("parts have CRC32C %x, upload wants %x", got, want.CRC32C))
			}
		} else {
			readBack = true
		}
	}
	md, err := encodeMetadata(u.Options.Metadata)
	if err != nil {
		return backends.ObjectInfo{}, backends.Errorf(op, b.String(), u.Key, nil, err)
	}
	ctype := or(u.Options.ContentType, defaultContentType)
	bb := b.c.NewBlockBlobClient(u.Key)
	resp, err := bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: &ctype, BlobContentMD5: want.MD5},
		Metadata:    md,
	})
	if err != nil {
		return backends.ObjectInfo{}, b.fail(ctx, op, u.Key, err)
	}
	if readBack {
		if err := b.verify(ctx, u.Key, resp.ETag, want); err != nil {
			return backends.ObjectInfo{}, err
		}
	}
	info := objectInfo(u.Key, &size, resp.ETag, resp.LastModified, want.MD5, &ctype, nil)
	info.Metadata = maps.Clone(u.Options.Metadata)
	return info, nil
}

// verify reads the blob at key, pinned to etag, and checks it against want.
// On a mismatch it deletes that version of the blob and returns ErrChecksum.
func (b *Backend) verify(ctx context.Context, key string, etag *azcore.ETag, want backends.Checksums) error {
	const op = "complete-upload"
	if etag == nil {
		return backends.Errorf(op, b.String(), key, nil, errors.New("commit returned no ETag"))
	}
	ac := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: etag}}
	resp, err := b.c.NewBlobClient(key).DownloadStream(ctx, &blob.DownloadStreamOptions{AccessConditions: ac})
	if err != nil {
		return b.fail(ctx, op, key, err)
	}
	rr := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	defer rr.Close()
	h, crc := md5.New(), crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if _, err := io.Copy(io.MultiWriter(h, crc), rr); err != nil {
		return b.fail(ctx, op, key, err)
	}
	sumErr := digest{md5: h.Sum(nil), crc32c: crc.Sum(nil)}.check(want)
	if sumErr == nil {
		return nil
	}
	_, err = b.c.NewBlobClient(key).Delete(ctx, &blob.DeleteOptions{
		AccessConditions: ac, DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude),
	})
	if err != nil {
		sumErr = fmt.Errorf("%w; deleting the bad object: %w", sumErr, b.fail(ctx, op, key, err))
	}
	return backends.Errorf(op, b.String(), key, backends.ErrChecksum, sumErr)
}

// AbortUpload implements backends.Multipart by staging the upload's
// tombstone block: the upload becomes unknown to ListParts and
// CompleteUpload. Its blocks stay, invisible, until the next commit on the
// key or Azure's seven-day expiry. An upload with a malformed ID is unknown:
// aborting it succeeds without a request.
func (b *Backend) AbortUpload(ctx context.Context, u backends.Upload) error {
	if err := b.checkUpload("abort-upload", u); err != nil {
		if errors.Is(err, backends.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := b.stageMark(ctx, u.Key, u.ID, abortSuffix); err != nil {
		return b.fail(ctx, "abort-upload", u.Key, err)
	}
	return nil
}

// ListUploads implements backends.Multipart: Azure cannot list pending
// uploads cheaply, so it yields nothing (their blocks expire after seven
// days).
func (b *Backend) ListUploads(ctx context.Context, prefix string) iter.Seq2[backends.Upload, error] {
	return func(yield func(backends.Upload, error) bool) {}
}
