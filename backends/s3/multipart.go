package s3

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferryio/ferry/backends"
)

// CreateUpload starts an S3 multipart upload whose parts carry CRC32C
// checksums combined into a FULL_OBJECT CRC32C of the whole object, so the
// completed object has the same kind of checksum as one written by Put.
// Content type, metadata and SSE-KMS are given to S3 here; opts is kept in
// the Upload (with the KMS key actually used) for CompleteUpload to check
// the whole-object CRC32C.
func (b *Backend) CreateUpload(ctx context.Context, key string, opts backends.PutOptions) (backends.Upload, error) {
	in := &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(b.bucket),
		Key:               aws.String(key),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		ChecksumType:      types.ChecksumTypeFullObject,
		Metadata:          opts.Metadata,
	}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	if kms := b.kmsKey(opts); kms != "" {
		opts.KMSKeyID = kms
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String(kms)
	}
	out, err := b.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return backends.Upload{}, b.wrap(ctx, "create-upload", key, err)
	}
	return backends.Upload{Key: key, ID: aws.ToString(out.UploadId), Options: opts, Started: time.Now()}, nil
}

// UploadPart sends part n with a CRC32C the store verifies. Sending n again
// replaces the part.
func (b *Backend) UploadPart(ctx context.Context, u backends.Upload, n int, body io.ReadSeeker, size int64) (backends.Part, error) {
	if n < 1 || n > maxParts {
		return backends.Part{}, b.wrapAs("upload-part", u.Key, nil, fmt.Errorf("part number %d out of range 1..%d", n, maxParts))
	}
	sec, err := backends.SectionHere(body, size)
	if err != nil {
		return backends.Part{}, b.wrap(ctx, "upload-part", u.Key, err)
	}
	out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:            aws.String(b.bucket),
		Key:               aws.String(u.Key),
		UploadId:          aws.String(u.ID),
		PartNumber:        aws.Int32(int32(n)),
		Body:              sec,
		ContentLength:     aws.Int64(size),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	})
	if err != nil {
		return backends.Part{}, b.wrap(ctx, "upload-part", u.Key, err)
	}
	return backends.Part{Number: n, Size: size, ETag: trimETag(out.ETag), CRC32C: decodeCRC(out.ChecksumCRC32C)}, nil
}

// ListParts pages through ListParts. An unknown upload is ErrNotExist.
func (b *Backend) ListParts(ctx context.Context, u backends.Upload) ([]backends.Part, error) {
	in := &s3.ListPartsInput{
		Bucket:   aws.String(b.bucket),
		Key:      aws.String(u.Key),
		UploadId: aws.String(u.ID),
	}
	if b.pageSize > 0 {
		in.MaxParts = aws.Int32(b.pageSize)
	}
	pages := s3.NewListPartsPaginator(b.client, in)
	var parts []backends.Part
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, b.wrap(ctx, "list-parts", u.Key, err)
		}
		for _, p := range page.Parts {
			parts = append(parts, backends.Part{
				Number: int(aws.ToInt32(p.PartNumber)),
				Size:   aws.ToInt64(p.Size),
				ETag:   trimETag(p.ETag),
				CRC32C: decodeCRC(p.ChecksumCRC32C),
			})
		}
	}
	return parts, nil
}

// CompleteUpload assembles the parts. When u.Options.Checksums.CRC32C is
// set it is sent as the object's full-object CRC32C and S3 fails the call on
// a mismatch (ErrChecksum), leaving nothing at the key. S3 cannot verify an
// MD5 of a multipart object, so u.Options.Checksums.MD5 is not checked here;
// the returned CRC32C lets the caller check the content it sent.
func (b *Backend) CompleteUpload(ctx context.Context, u backends.Upload, parts []backends.Part) (backends.ObjectInfo, error) {
	done := make([]types.CompletedPart, len(parts))
	var size int64
	for i, p := range parts {
		done[i] = types.CompletedPart{
			PartNumber: aws.Int32(int32(p.Number)),
			ETag:       aws.String(`"` + p.ETag + `"`),
		}
		if len(p.CRC32C) > 0 {
			done[i].ChecksumCRC32C = aws.String(base64.StdEncoding.EncodeToString(p.CRC32C))
		}
		size += p.Size
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(b.bucket),
		Key:             aws.String(u.Key),
		UploadId:        aws.String(u.ID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
		ChecksumType:    types.ChecksumTypeFullObject,
	}
	if crc := u.Options.Checksums.CRC32C; len(crc) > 0 {
		in.ChecksumCRC32C = aws.String(base64.StdEncoding.EncodeToString(crc))
	}
	out, err := b.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return backends.ObjectInfo{}, b.wrap(ctx, "complete-upload", u.Key, err)
	}
	oi := info(u.Key, size, responseDate(out.ResultMetadata), out.ETag, out.VersionId,
		aws.String(u.Options.ContentType), u.Options.Metadata, sse(out.ServerSideEncryption, nil))
	oi.Checksums.CRC32C = wholeCRC(out.ChecksumCRC32C, out.ChecksumType, 4)
	return oi, nil
}

// AbortUpload aborts the upload; an unknown upload is not an error.
func (b *Backend) AbortUpload(ctx context.Context, u backends.Upload) error {
	_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(b.bucket),
		Key:      aws.String(u.Key),
		UploadId: aws.String(u.ID),
	})
	if err = b.wrap(ctx, "abort-upload", u.Key, err); errors.Is(err, backends.ErrNotExist) {
		return nil
	}
	return err
}

// ListUploads streams pending uploads under prefix from
// ListMultipartUploads, in S3's order (key, then initiation). The Uploads
// carry Key, ID and Started; their Options are not known to S3 and are
// empty.
//
// The listing covers the whole bucket and is filtered here: MinIO treats
// the Prefix parameter of this call as an exact object name and lists
// nothing for a partial prefix. Pending uploads are few, so the cost is
// small.
func (b *Backend) ListUploads(ctx context.Context, prefix string) iter.Seq2[backends.Upload, error] {
	return func(yield func(backends.Upload, error) bool) {
		in := &s3.ListMultipartUploadsInput{
			Bucket:       aws.String(b.bucket),
			EncodingType: types.EncodingTypeUrl,
		}
		if b.pageSize > 0 {
			in.MaxUploads = aws.Int32(b.pageSize)
		}
		pages := s3.NewListMultipartUploadsPaginator(b.client, in)
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(backends.Upload{}, b.wrap(ctx, "list-uploads", prefix, err))
				return
			}
			for _, mu := range page.Uploads {
				key, err := url.QueryUnescape(aws.ToString(mu.Key))
				if err != nil {
					yield(backends.Upload{}, b.wrapAs("list-uploads", prefix, nil, err))
					return
				}
				if !strings.HasPrefix(key, prefix) {
					continue
				}
				u := backends.Upload{Key: key, ID: aws.ToString(mu.UploadId), Started: aws.ToTime(mu.Initiated)}
				if !yield(u, nil) {
					return
				}
			}
		}
	}
}

// MinPartSize is S3's 5 MiB minimum for every part but the last.
func (b *Backend) MinPartSize() int64 { return minPartSize }

// MaxParts is S3's limit of 10,000 parts.
func (b *Backend) MaxParts() int { return maxParts }

// decodeCRC decodes a part's base64 CRC32C; nil when absent or malformed.
func decodeCRC(b64 *string) []byte {
	crc, err := base64.StdEncoding.DecodeString(aws.ToString(b64))
	if err != nil || len(crc) != 4 {
		return nil
	}
	return crc
}
