package az

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
)

// defaultContentType is what Put stores when PutOptions has none, as the
// service would.
const defaultContentType = "application/octet-stream"

// List implements backends.Backend with the flat blob listing, metadata
// included (it comes in the same response). Blobs holding only uncommitted
// blocks (multipart uploads in progress) are not listed.
func (b *Backend) List(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		opts := &container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true}}
		if prefix != "" {
			opts.Prefix = &prefix
		}
		pager := b.c.NewListBlobsFlatPager(opts)
		var ro reorder
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				yield(backends.Entry{}, b.fail(ctx, "list", prefix, err))
				return
			}
			for _, it := range page.Segment.BlobItems {
				for _, e := range ro.push(itemEntry(it)) {
					if !yield(e, nil) {
						return
					}
				}
			}
		}
		for _, e := range ro.flush() {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// ListDir implements backends.Backend with the hierarchical listing and the
// delimiter "/", merging each page's prefixes and blobs.
func (b *Backend) ListDir(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		opts := &container.ListBlobsHierarchyOptions{Include: container.ListBlobsInclude{Metadata: true}}
		if prefix != "" {
			opts.Prefix = &prefix
		}
		pager := b.c.NewListBlobsHierarchyPager("/", opts)
		var ro reorder
		lastPrefix := ""
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				yield(backends.Entry{}, b.fail(ctx, "list", prefix, err))
				return
			}
			seg := page.Segment
			entries := make([]backends.Entry, 0, len(seg.BlobPrefixes)+len(seg.BlobItems))
			for _, p := range seg.BlobPrefixes {
				if p.Name != nil && *p.Name != lastPrefix {
					entries = append(entries, backends.Entry{ObjectInfo: backends.ObjectInfo{Key: *p.Name}, IsPrefix: true})
					lastPrefix = *p.Name
				}
			}
			for _, it := range seg.BlobItems {
				entries = append(entries, itemEntry(it))
			}
			// Each kind comes sorted; merge them in the service's order.
			slices.SortFunc(entries, func(x, y backends.Entry) int { return compareUTF16(x.Key, y.Key) })
			for _, e := range entries {
				for _, out := range ro.push(e) {
					if !yield(out, nil) {
						return
					}
				}
			}
		}
		for _, e := range ro.flush() {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func itemEntry(it *container.BlobItem) backends.Entry {
	var info backends.ObjectInfo
	if p := it.Properties; p != nil {
		info = objectInfo("", p.ContentLength, p.ETag, p.LastModified, p.ContentMD5, p.ContentType, it.Metadata)
	}
	if it.Name != nil {
		info.Key = *it.Name
	}
	return backends.Entry{ObjectInfo: info}
}

// objectInfo builds an ObjectInfo from the properties every response
// carries under the same names.
func objectInfo(key string, size *int64, etag *azcore.ETag, mod *time.Time, md5 []byte, ctype *string, md map[string]*string) backends.ObjectInfo {
	info := backends.ObjectInfo{Key: key, Metadata: decodeMetadata(md)}
	if size != nil {
		info.Size = *size
	}
	if etag != nil {
		// Headers quote ETags, listings do not: Version holds them bare.
		info.Version = backends.Version{ETag: strings.Trim(string(*etag), `"`)}
	}
	if mod != nil {
		info.ModTime = *mod
	}
	if len(md5) == 16 {
		info.Checksums.MD5 = md5
	}
	if ctype != nil {
		info.ContentType = *ctype
	}
	return info
}

// Stat implements backends.Backend with Get Blob Properties.
func (b *Backend) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	if err := b.checkKey("stat", key); err != nil {
		return backends.ObjectInfo{}, err
	}
	p, err := b.c.NewBlobClient(key).GetProperties(ctx, nil)
	if err != nil {
		return backends.ObjectInfo{}, b.fail(ctx, "stat", key, err)
	}
	return objectInfo(key, p.ContentLength, p.ETag, p.LastModified, p.ContentMD5, p.ContentType, p.Metadata), nil
}

// GetRange implements backends.Backend with a ranged Get Blob, pinned with
// If-Match to IfVersion's ETag when set, and otherwise to the ETag of the
// first response when the body has to be fetched again after a broken
// connection. A zero length, and a range the service refuses (416), are
// answered from the blob's properties: empty at offset == size,
// ErrInvalidRange beyond.
func (b *Backend) GetRange(ctx context.Context, key string, offset, length int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	if err := b.checkKey("get", key); err != nil {
		return nil, backends.ObjectInfo{}, err
	}
	if offset < 0 {
		return nil, backends.ObjectInfo{}, backends.Errorf("get", b.String(), key, backends.ErrInvalidRange, fmt.Errorf("negative offset %d", offset))
	}
	ac, err := b.pin(key, opts.IfVersion)
	if err != nil {
		return nil, backends.ObjectInfo{}, err
	}
	bc := b.c.NewBlobClient(key)
	if length == 0 {
		return b.emptyAt(ctx, bc, key, offset, ac, nil)
	}
	count := max(length, 0) // 0 is "to the end" for the SDK
	resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range:            blob.HTTPRange{Offset: offset, Count: count},
		AccessConditions: ac,
	})
	if err != nil {
		if kindOf(err) == backends.ErrInvalidRange {
			return b.emptyAt(ctx, bc, key, offset, ac, err)
		}
		return nil, backends.ObjectInfo{}, b.fail(ctx, "get", key, err)
	}
	sum := resp.BlobContentMD5 // the whole blob's, on a ranged read
	if len(sum) == 0 && resp.ContentRange == nil {
		sum = resp.ContentMD5
	}
	info := objectInfo(key, resp.ContentLength, resp.ETag, resp.LastModified, sum, resp.ContentType, resp.Metadata)
	if total, ok := rangeTotal(resp.ContentRange); ok {
		info.Size = total
	}
	rr := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	return &body{r: rr, ctx: ctx, b: b, key: key}, info, nil
}

// emptyAt answers a read of no bytes at offset from the blob's properties.
// rangeErr is the service's refusal of the range, if that is why.
func (b *Backend) emptyAt(ctx context.Context, bc *blob.Client, key string, offset int64, ac *blob.AccessConditions, rangeErr error) (io.ReadCloser, backends.ObjectInfo, error) {
	p, err := bc.GetProperties(ctx, &blob.GetPropertiesOptions{AccessConditions: ac})
	if err != nil {
		return nil, backends.ObjectInfo{}, b.fail(ctx, "get", key, err)
	}
	info := objectInfo(key, p.ContentLength, p.ETag, p.LastModified, p.ContentMD5, p.ContentType, p.Metadata)
	if offset > info.Size {
		if rangeErr == nil {
			rangeErr = fmt.Errorf("offset %d beyond size %d", offset, info.Size)
		}
		return nil, backends.ObjectInfo{}, backends.Errorf("get", b.String(), key, backends.ErrInvalidRange, rangeErr)
	}
	return http.NoBody, info, nil
}

// pin returns the access conditions for IfVersion v: nil when v is zero.
func (b *Backend) pin(key string, v backends.Version) (*blob.AccessConditions, error) {
	if v.IsZero() {
		return nil, nil
	}
	if v.ETag == "" {
		return nil, backends.Errorf("get", b.String(), key, backends.ErrPrecondition, errors.New("version has no ETag"))
	}
	etag := azcore.ETag(`"` + strings.Trim(v.ETag, `"`) + `"`)
	return &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}}, nil
}

// rangeTotal parses the total of a Content-Range "bytes a-b/total".
func rangeTotal(cr *string) (int64, bool) {
	if cr == nil {
		return 0, false
	}
	_, total, ok := strings.Cut(*cr, "/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return n, err == nil
}

// body maps read errors onto the backends sentinels.
type body struct {
	r   io.ReadCloser
	ctx context.Context
	b   *Backend
	key string
}

func (r *body) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.fail(r.ctx, "get", r.key, err)
	}
	return n, err
}

func (r *body) Close() error { return r.r.Close() }

// Put implements backends.Backend. Objects up to BlockSize go in one Put
// Blob request; larger ones are staged as blocks of BlockSize (several at
// once when body is an io.ReaderAt) and committed with Put Block List, so
// either way nothing is visible until the one request that makes the whole
// object visible. Staged blocks of a failed Put stay invisible until the
// next commit on the key or until Azure discards them after a week.
func (b *Backend) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	if err := b.checkKey("put", key); err != nil {
		return backends.ObjectInfo{}, err
	}
	if size < 0 {
		return backends.ObjectInfo{}, backends.Errorf("put", b.String(), key, nil, fmt.Errorf("negative size %d", size))
	}
	md, err := encodeMetadata(opts.Metadata)
	if err != nil {
		return backends.ObjectInfo{}, backends.Errorf("put", b.String(), key, nil, err)
	}
	bs, err := b.blockSizeFor(size)
	if err != nil {
		return backends.ObjectInfo{}, backends.Errorf("put", b.String(), key, nil, err)
	}
	single := size <= b.blockSize
	if single {
		bs = 0
	}
	start, d, err := hashBody(ctx, body, size, bs)
	if err != nil {
		return backends.ObjectInfo{}, b.fail(ctx, "put", key, err)
	}
	if err := d.check(opts.Checksums); err != nil {
		return backends.ObjectInfo{}, backends.Errorf("put", b.String(), key, backends.ErrChecksum, err)
	}
	ctype := or(opts.ContentType, defaultContentType)
	headers := &blob.HTTPHeaders{BlobContentType: &ctype, BlobContentMD5: d.md5}
	bb := b.c.NewBlockBlobClient(key)
	var etag *azcore.ETag
	var mod *time.Time
	if single {
		resp, err := bb.Upload(ctx, backends.NewSection(body, start, size), &blockblob.UploadOptions{
			HTTPHeaders: headers, Metadata: md, TransactionalValidation: blob.TransferValidationTypeMD5(d.md5),
		})
		if err != nil {
			return backends.ObjectInfo{}, b.fail(ctx, "put", key, err)
		}
		etag, mod = resp.ETag, resp.LastModified
	} else {
		resp, err := b.putBlocks(ctx, bb, body, start, size, bs, d, &blockblob.CommitBlockListOptions{HTTPHeaders: headers, Metadata: md})
		if err != nil {
			return backends.ObjectInfo{}, b.fail(ctx, "put", key, err)
		}
		etag, mod = resp.ETag, resp.LastModified
	}
	info := objectInfo(key, &size, etag, mod, d.md5, &ctype, nil)
	info.Metadata = maps.Clone(opts.Metadata)
	return info, nil
}

// blockSizeFor returns the block size for an object of size bytes: the
// configured one, grown to fit in 50,000 blocks.
func (b *Backend) blockSizeFor(size int64) (int64, error) {
	bs := max(b.blockSize, (size+maxBlocks-1)/maxBlocks)
	if bs > maxBlockSize {
		return 0, fmt.Errorf("object of %d bytes is larger than Azure's block blob limit", size)
	}
	return bs, nil
}

// putBlocks stages the size bytes of body from start as blocks of bs bytes,
// each with its MD5 from d for the service to verify, and commits them.
func (b *Backend) putBlocks(ctx context.Context, bb *blockblob.Client, body io.ReadSeeker, start, size, bs int64, d digest, commit *blockblob.CommitBlockListOptions) (blockblob.CommitBlockListResponse, error) {
	nonce, err := newNonce()
	if err != nil {
		return blockblob.CommitBlockListResponse{}, err
	}
	ids := make([]string, len(d.blocks))
	ra, parallel := body.(io.ReaderAt)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(1)
	if parallel {
		g.SetLimit(putConcurrency)
	}
	for i := range ids {
		off := int64(i) * bs
		n := min(bs, size-off)
		ids[i] = blockID(nonce, i+1)
		var rsc io.ReadSeekCloser = backends.NewSection(body, start+off, n)
		if parallel {
			rsc = streaming.NopCloser(io.NewSectionReader(ra, start+off, n))
		}
		g.Go(func() error {
			_, err := bb.StageBlock(gctx, ids[i], rsc, &blockblob.StageBlockOptions{
				TransactionalValidation: blob.TransferValidationTypeMD5(d.blocks[i]),
			})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return blockblob.CommitBlockListResponse{}, err
	}
	return bb.CommitBlockList(ctx, ids, commit)
}

// Delete implements backends.Backend; the blob's snapshots go with it.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.checkKey("delete", key); err != nil {
		return err
	}
	_, err := b.c.NewBlobClient(key).Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)})
	if err != nil && kindOf(err) != backends.ErrNotExist {
		return b.fail(ctx, "delete", key, err)
	}
	return nil
}
