// Package s3 is the backends driver for Amazon S3 and S3-compatible stores
// (MinIO and others), on aws-sdk-go-v2.
//
// Credentials, region and endpoint come from the SDK's default chain
// (environment, shared profile, web identity, ECS/EC2 roles) unless Options
// overrides them. The SDK never writes to stdout or stderr: its logger is
// silenced and response checksum validation, with its "no supported
// checksum" warning on ranged reads, runs only where S3 requires it; ferry
// verifies whole-object checksums itself.
//
// Objects are written with a CRC32C checksum that the store verifies and
// keeps; multipart uploads use a full-object CRC32C, so Stat reports one
// CRC32C for every object ferry wrote, however it was uploaded.
package s3

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
	smithymw "github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferryio/ferry/backends"
)

// Options configure a Backend. Only Bucket is required.
type Options struct {
	Bucket string
	// Endpoint is an S3-compatible endpoint such as "http://127.0.0.1:9000".
	// When set, requests use path-style addressing unless VirtualHost is
	// true. Empty: the SDK's own resolution, which honours
	// AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL.
	Endpoint    string
	VirtualHost bool
	// Region; empty takes the SDK chain (AWS_REGION, AWS_DEFAULT_REGION,
	// the profile) and then "us-east-1".
	Region string
	// KMSKeyID requests SSE-KMS with that key on every Put and multipart
	// upload that does not name its own key in PutOptions.KMSKeyID.
	KMSKeyID string
	// AccessKey, SecretKey and SessionToken, when AccessKey is set, replace
	// the SDK's credential chain. They are never logged.
	AccessKey, SecretKey, SessionToken string
	// HTTPClient replaces the default client (for tests and metrics
	// wrappers). It is used as given: AWS_CA_BUNDLE and the connection
	// pool settings apply only to the default client, which is an
	// awshttp.BuildableClient pooling connections for about 64 concurrent
	// requests per host. The SDK's credential providers keep the default
	// client.
	HTTPClient *http.Client
}

// Limits of S3 multipart uploads.
const (
	minPartSize = 5 << 20
	maxParts    = 10000
)

// maxAttempts is how often a request is tried (with backoff) unless
// AWS_MAX_ATTEMPTS or the profile says otherwise.
const maxAttempts = 5

// Backend is an S3 bucket. It implements backends.Backend and
// backends.Multipart and is safe for concurrent use.
type Backend struct {
	client *s3.Client
	bucket string
	kms    string
	// pageSize, when > 0, caps the entries per page of list calls (tests
	// use it to cross page boundaries with few objects).
	pageSize int32
	// sdkList decodes listings with the SDK's deserializer rather than
	// fastList (tests compare the two).
	sdkList bool
	// listFallbacks counts the listing pages fastList left to the SDK.
	listFallbacks atomic.Int64
	// lean makes GETs, small PUTs and listing pages without the SDK's
	// middleware where it applies (nil elsewhere; see lean.go; tests set
	// it to nil to compare the two).
	lean *lean
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.Multipart = (*Backend)(nil)
)

// New returns a Backend for opts.Bucket. It resolves configuration and
// credentials providers but makes no request, so a missing bucket or bad
// credentials show up on the first call (as ErrNoBucket or ErrPermission).
func New(ctx context.Context, opts Options) (*Backend, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3: no bucket")
	}
	load := []func(*config.LoadOptions) error{
		config.WithHTTPClient(defaultHTTPClient()),
		config.WithLogger(logging.Nop{}),
		config.WithClientLogMode(0),
	}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.AccessKey != "" {
		load = append(load, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, opts.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3: loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	attempts := maxAttempts
	if cfg.RetryMaxAttempts > 0 {
		attempts = cfg.RetryMaxAttempts
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
			o.UsePathStyle = !opts.VirtualHost
		}
		if opts.HTTPClient != nil {
			o.HTTPClient = opts.HTTPClient
		}
		o.Logger = logging.Nop{}
		o.ClientLogMode = 0
		o.DisableLogOutputChecksumValidationSkipped = true
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = attempts
			// Many concurrent part uploads must not drain a shared retry
			// quota and fail requests that a retry would save.
			so.RateLimiter = ratelimit.None
		})
	})
	return &Backend{client: client, bucket: opts.Bucket, kms: opts.KMSKeyID, lean: newLean(opts, client.Options())}, nil
}

// defaultHTTPClient is the SDK's buildable client (which AWS_CA_BUNDLE
// needs) with a pool for ~64 concurrent requests and a bound on how long a
// server may sit on a request before answering.
func defaultHTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 128
		tr.MaxIdleConnsPerHost = 64
		tr.IdleConnTimeout = 90 * time.Second
		tr.ResponseHeaderTimeout = 2 * time.Minute
	})
}

// String returns "s3://bucket".
func (b *Backend) String() string { return "s3://" + b.bucket }

// Stat returns the object's attributes from a HEAD request (checksum mode
// enabled), with its stored CRC32C, CRC32 and CRC64NVME when they are
// checksums of the whole object (single-part objects and full-object
// multipart checksums; S3 keeps at most one, and a CRC64NVME for every
// object uploaded without another), and its MD5 when the ETag is one. A
// HEAD response has no body, so a missing bucket also reads as ErrNotExist.
func (b *Backend) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	return b.head(ctx, "stat", key, backends.ReadOptions{})
}

// head is Stat, optionally pinned as opts say (a changed or deleted object
// then fails with ErrPrecondition).
func (b *Backend) head(ctx context.Context, op, key string, opts backends.ReadOptions) (backends.ObjectInfo, error) {
	in := &s3.HeadObjectInput{
		Bucket:       aws.String(b.bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	}
	pin(opts, &in.IfMatch, &in.VersionId)
	out, err := b.client.HeadObject(ctx, in)
	if err != nil {
		return backends.ObjectInfo{}, b.pinnedErr(ctx, op, key, opts, err)
	}
	oi := info(key, aws.ToInt64(out.ContentLength), out.LastModified, out.ETag, out.VersionId,
		out.ContentType, out.Metadata, sse(out.ServerSideEncryption, out.SSECustomerAlgorithm))
	oi.Checksums = headChecksums(oi.Checksums, out)
	if err := b.checkExact(op, key, opts, oi.Version); err != nil {
		return backends.ObjectInfo{}, err
	}
	return oi, nil
}

// pin sets the conditions that pin a request as opts say. A read by
// version id (opts.Exact with IfVersion.ID) sends the version id alone:
// that version's bytes never change, and checkExact compares the served
// ETag afterwards, which is as strict as an If-Match and does not depend
// on the store judging If-Match by the version asked for rather than the
// current one (MinIO does; the tests check the bytes either way).
// Otherwise If-Match on the ETag, so that the request fails unless the
// key's current object is that content; the version id is sent only when
// the version has no ETag, because reading by version id needs the
// s3:GetObjectVersion permission that read-only policies often lack.
func pin(opts backends.ReadOptions, ifMatch, versionID **string) {
	v := opts.IfVersion
	switch {
	case opts.Exact && v.ID != "":
		*versionID = aws.String(v.ID)
	case v.ETag != "":
		*ifMatch = aws.String(`"` + v.ETag + `"`)
	case v.ID != "":
		*versionID = aws.String(v.ID)
	}
}

// exact reports whether opts ask for a read by version id.
func exact(opts backends.ReadOptions) bool { return opts.Exact && opts.IfVersion.ID != "" }

// checkExact fails a read by version id (see pin) whose served version is
// not the one asked for: another version id, or an ETag other than
// IfVersion.ETag.
func (b *Backend) checkExact(op, key string, opts backends.ReadOptions, served backends.Version) error {
	want := opts.IfVersion
	if !exact(opts) || (served.ID == want.ID && (want.ETag == "" || served.ETag == want.ETag)) {
		return nil
	}
	return b.wrapAs(op, key, backends.ErrPrecondition, fmt.Errorf("version %s served, %s asked", served, want))
}

// pinnedErr wraps err; for a pinned request a missing object means the
// pinned version is gone, which is ErrPrecondition. So does any answer
// that refuses a read by version id for want of that version: S3 answers
// an id of a delete marker with 405, and an id it cannot parse with 400.
func (b *Backend) pinnedErr(ctx context.Context, op, key string, opts backends.ReadOptions, err error) error {
	werr := b.wrap(ctx, op, key, err)
	if ctx.Err() != nil {
		return werr
	}
	if !opts.IfVersion.IsZero() && errors.Is(werr, backends.ErrNotExist) {
		return b.wrapAs(op, key, backends.ErrPrecondition, err)
	}
	if exact(opts) && noSuchVersion(err) {
		return b.wrapAs(op, key, backends.ErrPrecondition, err)
	}
	return werr
}

// GetRange reads [offset, offset+length) of the object. A read from offset
// 0 to the end is a plain GET; other reads send a Range header. Reads that
// S3 answers with 416 (offset at or past the end, or any range of an empty
// object) are resolved with a HEAD: offset == size yields an empty body,
// offset > size ErrInvalidRange. length == 0 is a HEAD only. opts.IfVersion
// is sent as If-Match, or with opts.Exact as the version id (see pin).
// ObjectInfo.Version carries the response's version id on versioned
// buckets.
func (b *Backend) GetRange(ctx context.Context, key string, offset, length int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	if offset < 0 {
		return nil, backends.ObjectInfo{}, b.wrapAs("get", key, backends.ErrInvalidRange, fmt.Errorf("negative offset %d", offset))
	}
	if length == 0 {
		return b.emptyAt(ctx, key, offset, opts)
	}
	if length > math.MaxInt64-offset {
		length = -1
	}
	in := &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	if b.lean != nil {
		rc, oi, err := b.lean.get(ctx, key, aws.ToString(in.Range), opts)
		switch {
		case err == nil:
			if err := b.checkExact("get", key, opts, oi.Version); err != nil {
				rc.Close()
				return nil, backends.ObjectInfo{}, err
			}
			return &body{rc: rc, ctx: ctx, b: b, key: key}, oi, nil
		case !errors.Is(err, errFallback):
			return nil, backends.ObjectInfo{}, b.wrap(ctx, "get", key, err)
		}
	}
	pin(opts, &in.IfMatch, &in.VersionId)
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		werr := b.pinnedErr(ctx, "get", key, opts, err)
		if errors.Is(werr, backends.ErrInvalidRange) {
			return b.emptyAt(ctx, key, offset, opts)
		}
		return nil, backends.ObjectInfo{}, werr
	}
	size := aws.ToInt64(out.ContentLength)
	if total, ok := rangeTotal(aws.ToString(out.ContentRange)); ok {
		size = total
	}
	oi := info(key, size, out.LastModified, out.ETag, out.VersionId, out.ContentType, out.Metadata,
		sse(out.ServerSideEncryption, out.SSECustomerAlgorithm))
	if err := b.checkExact("get", key, opts, oi.Version); err != nil {
		out.Body.Close()
		return nil, backends.ObjectInfo{}, err
	}
	return &body{rc: out.Body, ctx: ctx, b: b, key: key}, oi, nil
}

// emptyAt answers a read of nothing at offset: an empty body when offset is
// within [0, size], ErrInvalidRange past the end.
func (b *Backend) emptyAt(ctx context.Context, key string, offset int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	oi, err := b.head(ctx, "get", key, opts)
	if err != nil {
		return nil, backends.ObjectInfo{}, err
	}
	if offset > oi.Size {
		return nil, backends.ObjectInfo{}, b.wrapAs("get", key, backends.ErrInvalidRange,
			fmt.Errorf("offset %d beyond size %d", offset, oi.Size))
	}
	return io.NopCloser(strings.NewReader("")), oi, nil
}

// rangeTotal parses the total size of a Content-Range "bytes a-b/total".
func rangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return n, err == nil
}

// body maps read errors of a GET body onto backends errors, so that a
// cancelled context surfaces as context.Canceled.
type body struct {
	rc  io.ReadCloser
	ctx context.Context
	b   *Backend
	key string
}

// Read honours the request's context even for bytes already buffered, so a
// cancelled read stops at once with context.Canceled.
func (r *body) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, r.b.wrap(r.ctx, "read", r.key, err)
	}
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.wrap(r.ctx, "read", r.key, err)
	}
	return n, err
}

func (r *body) Close() error { return r.rc.Close() }

// Put uploads the object in one PutObject request with a CRC32C that S3
// verifies and stores. Checksums in opts are sent instead (CRC32C) or in
// addition (Content-MD5) so that the store rejects a mismatch with
// ErrChecksum. The SDK seeks body back to where it started to retry.
func (b *Backend) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	sec, err := backends.SectionHere(body, size)
	if err != nil {
		return backends.ObjectInfo{}, b.wrap(ctx, "put", key, err)
	}
	if b.lean != nil && size <= leanPutMax && len(opts.Checksums.CRC32C) > 0 && b.kmsKey(opts) == "" {
		oi, err := b.lean.put(ctx, key, sec, size, opts)
		if !errors.Is(err, errFallback) {
			if err != nil {
				return backends.ObjectInfo{}, b.wrap(ctx, "put", key, err)
			}
			return oi, nil
		}
		if _, err := sec.Seek(0, io.SeekStart); err != nil {
			return backends.ObjectInfo{}, b.wrap(ctx, "put", key, err)
		}
	}
	in := &s3.PutObjectInput{
		Bucket:            aws.String(b.bucket),
		Key:               aws.String(key),
		Body:              sec,
		ContentLength:     aws.Int64(size),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		Metadata:          opts.Metadata,
	}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	if len(opts.Checksums.CRC32C) > 0 {
		in.ChecksumCRC32C = aws.String(base64.StdEncoding.EncodeToString(opts.Checksums.CRC32C))
	}
	if len(opts.Checksums.MD5) > 0 {
		in.ContentMD5 = aws.String(base64.StdEncoding.EncodeToString(opts.Checksums.MD5))
	}
	if kms := b.kmsKey(opts); kms != "" {
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String(kms)
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		return backends.ObjectInfo{}, b.wrap(ctx, "put", key, err)
	}
	oi := info(key, size, responseDate(out.ResultMetadata), out.ETag, out.VersionId, aws.String(opts.ContentType),
		opts.Metadata, sse(out.ServerSideEncryption, out.SSECustomerAlgorithm))
	oi.Checksums.CRC32C = wholeCRC(out.ChecksumCRC32C, out.ChecksumType, 4)
	return oi, nil
}

// kmsKey is the SSE-KMS key for a write: the one in opts, else the
// Backend's.
func (b *Backend) kmsKey(opts backends.PutOptions) string {
	if opts.KMSKeyID != "" {
		return opts.KMSKeyID
	}
	return b.kms
}

// Delete removes the object; S3 answers a missing key with success.
func (b *Backend) Delete(ctx context.Context, key string) error {
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
	if err = b.wrap(ctx, "delete", key, err); errors.Is(err, backends.ErrNotExist) {
		return nil
	}
	return err
}

// info builds an ObjectInfo from the fields S3 returns on HEAD, GET and
// PUT. encrypted says the ETag is not the MD5 of the content (SSE-KMS,
// SSE-C).
func info(key string, size int64, mod *time.Time, etag, versionID, contentType *string,
	meta map[string]string, encrypted bool) backends.ObjectInfo {
	oi := backends.ObjectInfo{
		Key:         key,
		Size:        size,
		ModTime:     aws.ToTime(mod),
		Version:     backends.Version{ETag: trimETag(etag), ID: aws.ToString(versionID)},
		ContentType: aws.ToString(contentType),
	}
	if !encrypted {
		oi.Checksums.MD5 = etagMD5(oi.Version.ETag)
	}
	if len(meta) > 0 {
		oi.Metadata = make(map[string]string, len(meta))
		for k, v := range meta {
			oi.Metadata[strings.ToLower(k)] = v
		}
	}
	return oi
}

// trimETag strips the quotes S3 puts around ETags.
func trimETag(etag *string) string { return strings.Trim(aws.ToString(etag), `"`) }

// etagMD5 is the MD5 an ETag stands for: 32 hex digits without a "-N"
// multipart suffix. Other ETags give nil.
func etagMD5(etag string) []byte {
	if len(etag) != 2*16 {
		return nil
	}
	sum, err := hex.DecodeString(etag)
	if err != nil {
		return nil
	}
	return sum
}

// sse reports whether server-side encryption makes the ETag something else
// than the content's MD5.
func sse(alg types.ServerSideEncryption, customerAlg *string) bool {
	return (alg != "" && alg != types.ServerSideEncryptionAes256) || aws.ToString(customerAlg) != ""
}

// headChecksums adds to sums the whole-object CRCs of a HEAD response.
func headChecksums(sums backends.Checksums, out *s3.HeadObjectOutput) backends.Checksums {
	sums.CRC32C = wholeCRC(out.ChecksumCRC32C, out.ChecksumType, 4)
	sums.CRC32 = wholeCRC(out.ChecksumCRC32, out.ChecksumType, 4)
	sums.CRC64NVME = wholeCRC(out.ChecksumCRC64NVME, out.ChecksumType, 8)
	return sums
}

// wholeCRC decodes a stored CRC of size bytes (4: CRC32C, CRC32; 8:
// CRC64NVME) when it covers the whole object: a FULL_OBJECT checksum, or
// one without a type that is not a composite ("...-N") checksum of parts.
// A value that does not decode to size bytes gives nil.
func wholeCRC(b64 *string, typ types.ChecksumType, size int) []byte {
	s := aws.ToString(b64)
	if s == "" || typ == types.ChecksumTypeComposite || strings.Contains(s, "-") {
		return nil
	}
	crc, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(crc) != size {
		return nil
	}
	return crc
}

// responseDate is the Date header of the response behind md, the server's
// time of a write (S3 reports no Last-Modified on PUT). Zero when unknown.
func responseDate(md smithymw.Metadata) *time.Time {
	raw, ok := awsmw.GetRawResponse(md).(*smithyhttp.Response)
	if !ok || raw.Response == nil {
		return nil
	}
	return headerTime(raw.Header, "Date")
}
