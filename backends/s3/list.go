package s3

import (
	"context"
	"errors"
	"iter"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferryio/ferry/backends"
)

// List streams the objects under prefix with ListObjectsV2, one page at a
// time, in S3's key order (ascending UTF-8 bytes). Keys are requested URL
// encoded, since XML cannot carry every byte a key may hold, and decoded
// here. Listings carry size, ModTime and Version.ETag only: no version id,
// and no checksums, because a listing cannot tell whether an ETag is an MD5
// (it is not under SSE-KMS).
func (b *Backend) List(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return b.list(ctx, "list", prefix, "")
}

// ListDir streams one level under prefix: ListObjectsV2 with delimiter "/",
// each page's objects and common prefixes merged into key order (S3 returns
// them as two sorted lists per page, and pages follow each other in order).
func (b *Backend) ListDir(ctx context.Context, prefix string) iter.Seq2[backends.Entry, error] {
	return b.list(ctx, "list", prefix, "/")
}

func (b *Backend) list(ctx context.Context, op, prefix, delim string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		token := ""
		for {
			page, err := b.listPage(ctx, prefix, delim, token)
			if err != nil {
				yield(backends.Entry{}, b.wrap(ctx, op, prefix, err))
				return
			}
			entries, err := pageEntries(page)
			if err != nil {
				yield(backends.Entry{}, b.wrapAs(op, prefix, nil, err))
				return
			}
			for _, e := range entries {
				if !yield(e, nil) {
					return
				}
			}
			// As the SDK's paginator: a page that is not truncated, or
			// gives no token, is the last.
			token = aws.ToString(page.NextContinuationToken)
			if !aws.ToBool(page.IsTruncated) || token == "" {
				return
			}
		}
	}
}

// listPage is one ListObjectsV2 page of prefix after token ("" for the
// first), keys URL-encoded: through the lean path where it applies, else
// (or when the lean request does not succeed) through the SDK, with the
// fast deserializer unless sdkList.
func (b *Backend) listPage(ctx context.Context, prefix, delim, token string) (*s3.ListObjectsV2Output, error) {
	if b.lean != nil {
		page, err := b.lean.list(ctx, prefix, delim, token, b.pageSize)
		if !errors.Is(err, errFallback) {
			return page, err
		}
	}
	in := &s3.ListObjectsV2Input{
		Bucket:       aws.String(b.bucket),
		Prefix:       aws.String(prefix),
		EncodingType: types.EncodingTypeUrl,
	}
	if delim != "" {
		in.Delimiter = aws.String(delim)
	}
	if token != "" {
		in.ContinuationToken = aws.String(token)
	}
	if b.pageSize > 0 {
		in.MaxKeys = aws.Int32(b.pageSize)
	}
	var opts []func(*s3.Options)
	if !b.sdkList {
		opts = append(opts, withFastList(&b.listFallbacks))
	}
	return b.client.ListObjectsV2(ctx, in, opts...)
}

// pageEntries decodes one page's objects and common prefixes and merges
// them into ascending key order. Both lists are sorted by their decoded
// keys; the encoded forms do not sort alike, so the merge compares decoded
// keys.
func pageEntries(page *s3.ListObjectsV2Output) ([]backends.Entry, error) {
	entries := make([]backends.Entry, 0, len(page.Contents)+len(page.CommonPrefixes))
	dirs := make([]string, 0, len(page.CommonPrefixes))
	for _, cp := range page.CommonPrefixes {
		key, err := url.QueryUnescape(aws.ToString(cp.Prefix))
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, key)
	}
	for _, o := range page.Contents {
		key, err := url.QueryUnescape(aws.ToString(o.Key))
		if err != nil {
			return nil, err
		}
		for len(dirs) > 0 && dirs[0] < key {
			entries = append(entries, prefixEntry(dirs[0]))
			dirs = dirs[1:]
		}
		e := backends.Entry{}
		e.Key = key
		e.Size = aws.ToInt64(o.Size)
		e.ModTime = aws.ToTime(o.LastModified)
		e.Version.ETag = trimETag(o.ETag)
		entries = append(entries, e)
	}
	for _, d := range dirs {
		entries = append(entries, prefixEntry(d))
	}
	return entries, nil
}

func prefixEntry(key string) backends.Entry {
	e := backends.Entry{IsPrefix: true}
	e.Key = key
	return e
}
