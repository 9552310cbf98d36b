package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"github.com/ferryio/ferry/backends"
)

// Lean requests. The SDK's middleware stack costs about 120 µs of CPU per
// request beyond the HTTP exchange and the signature (measured on GETs of
// 4 KiB objects from MinIO: 250 µs of user CPU each through the SDK, 160
// through the lean path, and 500 allocations against 130). On a dataset of
// small objects that is a CPU-second per 10,000 files, on machines where
// the store's own server often shares the cores.
//
// So, against an S3-compatible endpoint addressed path-style (the
// endpoint option without VirtualHost, and no path of its own), GETs,
// small PUTs and listing pages are built here: the URL and headers the
// SDK would send for the same input, signed by the SDK's own SigV4 signer
// with the SDK's credentials, sent through the same HTTP client. Only
// success is read here. Any other answer, or a transport error, sends the
// same request again through the SDK, whose retries and error mapping
// then apply unchanged: the lean path changes how a request that works is
// made, never what a failure reports.
type lean struct {
	base   string // scheme://host[:port]/bucket/, path-escaped
	region string
	creds  aws.CredentialsProvider
	signer *v4.Signer
	hc     interface {
		Do(*http.Request) (*http.Response, error)
	}
	// served counts the requests the lean path answered (tests).
	served atomic.Int64
}

// leanPutMax is the largest body a lean PUT sends: it is read into memory
// to be hashed for the signature, and above it the SDK's overhead is
// noise beside the transfer.
const leanPutMax = 256 << 10

// emptySHA256 is the SHA-256 of an empty payload, in hex.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// errFallback is a lean request that did not succeed; the SDK makes it
// again.
var errFallback = errors.New("s3: lean request not answered with success")

// newLean returns the lean path for a client with these options, or nil
// where it does not apply: no endpoint (AWS's own, resolved by the SDK's
// rules), virtual-hosted addressing, or an endpoint with a path.
func newLean(opts Options, o s3.Options) *lean {
	if opts.Endpoint == "" || opts.VirtualHost {
		return nil
	}
	u, err := url.Parse(opts.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil
	}
	return &lean{
		base:   u.Scheme + "://" + u.Host + "/" + httpbinding.EscapePath(opts.Bucket, true) + "/",
		region: o.Region,
		creds:  o.Credentials,
		signer: v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true }),
		hc:     o.HTTPClient,
	}
}

// do signs req (payloadHash: the body's SHA-256 in hex) and sends it. A
// response other than 200 or 206, and a transport error while ctx is live,
// give errFallback; the response is then closed.
func (l *lean) do(ctx context.Context, req *http.Request, payloadHash string) (*http.Response, error) {
	creds, err := l.creds.Retrieve(ctx)
	if err != nil {
		return nil, errFallback // the SDK reports it
	}
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	req.Header.Set("Accept-Encoding", "identity") // as the SDK: bytes as stored, never decompressed
	if err := l.signer.SignHTTP(ctx, creds, req, payloadHash, "s3", l.region, time.Now().UTC()); err != nil {
		return nil, errFallback
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errFallback
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection
		resp.Body.Close()
		return nil, errFallback
	}
	l.served.Add(1)
	return resp, nil
}

// request builds a request for key with query q; key "" is the bucket
// itself.
func (l *lean) request(ctx context.Context, method, key string, q url.Values, body io.Reader) (*http.Request, error) {
	raw := strings.TrimSuffix(l.base, "/")
	if key != "" {
		raw = l.base + httpbinding.EscapePath(key, false)
	}
	if len(q) > 0 {
		raw += "?" + q.Encode()
	}
	return http.NewRequestWithContext(ctx, method, raw, body)
}

// get is GetObject of key with the range header rng ("" for all of it)
// and the pin of opts. It returns the body and the object as the headers
// describe it.
func (l *lean) get(ctx context.Context, key, rng string, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	var ifMatch, versionID *string
	pin(opts, &ifMatch, &versionID)
	var q url.Values
	if versionID != nil {
		q = url.Values{"versionId": {*versionID}}
	}
	req, err := l.request(ctx, http.MethodGet, key, q, nil)
	if err != nil {
		return nil, backends.ObjectInfo{}, errFallback
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	if ifMatch != nil {
		req.Header.Set("If-Match", *ifMatch)
	}
	resp, err := l.do(ctx, req, emptySHA256)
	if err != nil {
		return nil, backends.ObjectInfo{}, err
	}
	h := resp.Header
	size := resp.ContentLength
	if total, ok := rangeTotal(h.Get("Content-Range")); ok {
		size = total
	}
	if size < 0 { // no length given: the SDK's reading of it applies
		resp.Body.Close()
		return nil, backends.ObjectInfo{}, errFallback
	}
	oi := info(key, size, headerTime(h, "Last-Modified"), headerString(h, "ETag"), headerString(h, "X-Amz-Version-Id"),
		headerString(h, "Content-Type"), userMetadata(h), headerSSE(h))
	return resp.Body, oi, nil
}

// list is one ListObjectsV2 page, as listPage asks for it (maxKeys 0:
// the store's default), read by parseListV2. A page the scanner does not
// read, or larger than maxListPage, goes to the SDK (errFallback).
func (l *lean) list(ctx context.Context, prefix, delim, token string, maxKeys int32) (*s3.ListObjectsV2Output, error) {
	q := url.Values{"list-type": {"2"}, "encoding-type": {"url"}, "prefix": {prefix}}
	if delim != "" {
		q.Set("delimiter", delim)
	}
	if token != "" {
		q.Set("continuation-token", token)
	}
	if maxKeys > 0 {
		q.Set("max-keys", strconv.Itoa(int(maxKeys)))
	}
	req, err := l.request(ctx, http.MethodGet, "", q, nil)
	if err != nil {
		return nil, errFallback
	}
	resp, err := l.do(ctx, req, emptySHA256)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListPage+1))
	if err != nil || len(body) > maxListPage {
		return nil, errFallback
	}
	page, err := parseListV2(body)
	if err != nil {
		return nil, errFallback
	}
	return page, nil
}

// put is PutObject of a body of at most leanPutMax bytes with the CRC32C
// (and MD5) in opts, which the caller has checked are there, and no
// SSE-KMS key.
func (l *lean) put(ctx context.Context, key string, body io.Reader, size int64, opts backends.PutOptions) (backends.ObjectInfo, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(body, data); err != nil {
		return backends.ObjectInfo{}, err // the caller's file: not the store's to report
	}
	sum := sha256.Sum256(data)
	req, err := l.request(ctx, http.MethodPut, key, nil, bytes.NewReader(data))
	if err != nil {
		return backends.ObjectInfo{}, errFallback
	}
	h := req.Header
	h.Set("X-Amz-Checksum-Crc32c", base64.StdEncoding.EncodeToString(opts.Checksums.CRC32C))
	h.Set("X-Amz-Sdk-Checksum-Algorithm", string(types.ChecksumAlgorithmCrc32c))
	if len(opts.Checksums.MD5) > 0 {
		h.Set("Content-Md5", base64.StdEncoding.EncodeToString(opts.Checksums.MD5))
	}
	if opts.ContentType != "" {
		h.Set("Content-Type", opts.ContentType)
	}
	for k, v := range opts.Metadata {
		h.Set("X-Amz-Meta-"+k, v)
	}
	resp, err := l.do(ctx, req, hex.EncodeToString(sum[:]))
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rh := resp.Header
	oi := info(key, size, headerTime(rh, "Date"), headerString(rh, "ETag"), headerString(rh, "X-Amz-Version-Id"),
		aws.String(opts.ContentType), opts.Metadata, headerSSE(rh))
	oi.Checksums.CRC32C = wholeCRC(headerString(rh, "X-Amz-Checksum-Crc32c"), types.ChecksumType(rh.Get("X-Amz-Checksum-Type")), 4)
	return oi, nil
}

// headerString is a header's value, nil when absent.
func headerString(h http.Header, name string) *string {
	if v := h.Values(name); len(v) > 0 {
		return aws.String(v[0])
	}
	return nil
}

// headerTime is an HTTP date header, nil when absent or malformed.
func headerTime(h http.Header, name string) *time.Time {
	t, err := http.ParseTime(h.Get(name))
	if err != nil {
		return nil
	}
	return &t
}

// headerSSE reports, as sse does, whether the response's server-side
// encryption makes the ETag something else than the content's MD5.
func headerSSE(h http.Header) bool {
	return sse(types.ServerSideEncryption(h.Get("X-Amz-Server-Side-Encryption")),
		headerString(h, "X-Amz-Server-Side-Encryption-Customer-Algorithm"))
}

// userMetadata collects the x-amz-meta-* headers, values trimmed, as the
// SDK does (info lowercases the names).
func userMetadata(h http.Header) map[string]string {
	var md map[string]string
	const prefix = "X-Amz-Meta-"
	for k, v := range h {
		if len(k) > len(prefix) && strings.EqualFold(k[:len(prefix)], prefix) && len(v) > 0 {
			if md == nil {
				md = map[string]string{}
			}
			md[k[len(prefix):]] = strings.TrimSpace(v[0])
		}
	}
	return md
}
