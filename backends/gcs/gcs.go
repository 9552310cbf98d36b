// Package gcs is the Google Cloud Storage driver: a backends.Backend and
// backends.Multipart over one bucket, through cloud.google.com/go/storage and
// the JSON API (never gRPC).
//
// Versions are GCS generations: Version.ID is the generation in decimal and
// Version.ETag the object's etag. Reads pinned to a version send an
// ifGenerationMatch precondition and also check the generation the server
// reports for the bytes it sends, so that no byte of another generation is
// ever returned, even by emulators that ignore read preconditions.
//
// The driver reserves the key prefix ".ferry-uploads/" of the bucket for its
// multipart uploads (see multipart.go): List and ListDir never show it, and
// every method refuses keys under it with ErrInvalidKey.
//
// When STORAGE_EMULATOR_HOST is set (fake-gcs-server, the official
// emulators), or Options.Endpoint is a plain http:// URL, the driver sends no
// credentials and never looks any up, so it needs no network beyond that
// host and no metadata server.
package gcs

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"github.com/ferryio/ferry/backends"
)

// Options configure New.
type Options struct {
	// Bucket is the bucket name (required).
	Bucket string
	// Endpoint overrides the JSON API endpoint, for example
	// "https://storage.example.com/storage/v1/". A URL without a path gets
	// "/storage/v1/" appended. A plain http:// endpoint is taken to be an
	// emulator: no credentials are sent to it.
	Endpoint string
	// CredentialsFile is a Google credentials JSON file (service account,
	// authorized user, external account, ...). Empty means
	// GOOGLE_APPLICATION_CREDENTIALS or the other Application Default
	// Credentials. Ignored when no credentials are sent (see Endpoint and
	// STORAGE_EMULATOR_HOST).
	CredentialsFile string
	// HTTPClient, when set, carries every request (for metering). The
	// driver adds authentication on top of its Transport when credentials
	// are used.
	HTTPClient *http.Client
}

// Backend is a GCS bucket. It is safe for concurrent use.
type Backend struct {
	client   *storage.Client
	bucket   *storage.BucketHandle
	name     string
	pageSize int // results asked for per list request
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.Multipart = (*Backend)(nil)
)

// New returns a Backend for opts.Bucket. It does not contact the store, so a
// missing bucket shows up on the first call (ErrNoBucket from List, Put).
func New(ctx context.Context, opts Options) (*Backend, error) {
	if opts.Bucket == "" {
		return nil, errors.New("gcs: no bucket given")
	}
	copts := []option.ClientOption{storage.WithJSONReads(), storage.WithDisabledClientMetrics()}
	noAuth := os.Getenv("STORAGE_EMULATOR_HOST") != ""
	if opts.Endpoint != "" {
		ep, plain, err := endpointURL(opts.Endpoint)
		if err != nil {
			return nil, err
		}
		copts = append(copts, option.WithEndpoint(ep))
		noAuth = noAuth || plain
	}
	switch {
	case noAuth:
		copts = append(copts, option.WithoutAuthentication())
		if opts.HTTPClient != nil {
			copts = append(copts, option.WithHTTPClient(opts.HTTPClient))
		}
	default:
		auth := []option.ClientOption{option.WithScopes(storage.ScopeFullControl)}
		if opts.CredentialsFile != "" {
			o, err := credentialsFileOption(opts.CredentialsFile)
			if err != nil {
				return nil, err
			}
			auth = append(auth, o)
		}
		if opts.HTTPClient == nil {
			copts = append(copts, auth...)
			break
		}
		base := opts.HTTPClient.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		t, err := htransport.NewTransport(ctx, base, auth...)
		if err != nil {
			return nil, fmt.Errorf("gcs: credentials: %w", err)
		}
		hc := *opts.HTTPClient
		hc.Transport = t
		copts = append(copts, option.WithHTTPClient(&hc))
	}
	client, err := storage.NewClient(ctx, copts...)
	if err != nil {
		return nil, fmt.Errorf("gcs: client: %w", err)
	}
	return &Backend{client: client, bucket: client.Bucket(opts.Bucket), name: opts.Bucket, pageSize: listPageSize}, nil
}

// endpointURL completes an endpoint override and reports whether it is
// plain http.
func endpointURL(ep string) (string, bool, error) {
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false, fmt.Errorf("gcs: endpoint %q: want an http:// or https:// URL", ep)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/storage/v1/"
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u.String(), u.Scheme == "http", nil
}

// credentialsFileOption loads a credentials file of the type it declares.
// The file's content is never logged.
func credentialsFileOption(path string) (option.ClientOption, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gcs: credentials file: %w", err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil || head.Type == "" {
		return nil, fmt.Errorf("gcs: credentials file %s: not a Google credentials JSON file", path)
	}
	return option.WithAuthCredentialsJSON(option.CredentialsType(head.Type), data), nil
}

// Close releases the client's idle connections.
func (b *Backend) Close() error { return b.client.Close() }

// String returns "gs://bucket".
func (b *Backend) String() string { return "gs://" + b.name }

// Stat returns the object's attributes, metadata included.
func (b *Backend) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return backends.ObjectInfo{}, b.fail(ctx, "stat", key, err)
	}
	attrs, err := b.bucket.Object(key).Attrs(ctx)
	if err != nil {
		return backends.ObjectInfo{}, b.fail(ctx, "stat", key, err)
	}
	return toInfo(attrs), nil
}

// Delete removes the object; a missing object is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return b.fail(ctx, "delete", key, err)
	}
	return b.delete(ctx, key)
}

// delete removes any object, reserved keys included.
func (b *Backend) delete(ctx context.Context, key string) error {
	err := b.bucket.Object(key).Delete(ctx)
	if err == nil || (errors.Is(err, storage.ErrObjectNotExist) && ctx.Err() == nil) {
		return nil
	}
	return b.fail(ctx, "delete", key, err)
}

// GetRange reads [offset, offset+length) of the object (see
// backends.Backend). It opens the read first and takes the generation the
// server reports for the bytes it sends; the library pins any reopen after
// a broken connection to that generation, so the body never mixes
// generations.
//
//   - Pinned (opts.IfVersion.ID set): one request carrying the generation
//     precondition. The ObjectInfo comes from the response; its Version is
//     opts.IfVersion, whose generation the response confirmed; MD5 is not
//     known.
//   - Unpinned: a second request reads the attributes of the served
//     generation, so that the ObjectInfo is complete. Should that
//     generation be replaced in between, the ObjectInfo comes from the
//     response, with Version.ID only.
//   - Pinned by ETag only, zero length, and reads that start at or beyond
//     the end (which the server refuses with 416) are answered from the
//     attributes first.
//   - Exact (opts.Exact with IfVersion.ID): as pinned, but the request
//     names the generation instead of a precondition on the live object,
//     so a noncurrent generation of a versioned bucket is served. The
//     served generation is checked all the same; a generation the bucket
//     does not hold is ErrPrecondition. IfVersion.ETag is not compared
//     (the response does not carry it; the generation names the content).
func (b *Backend) GetRange(ctx context.Context, key string, offset, length int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return nil, backends.ObjectInfo{}, b.fail(ctx, "get", key, err)
	}
	if offset < 0 {
		return nil, backends.ObjectInfo{}, b.fail(ctx, "get", key, errKind(backends.ErrInvalidRange, "negative offset %d", offset))
	}
	want := opts.IfVersion
	gen := int64(-1)
	if want.ID != "" {
		g, err := strconv.ParseInt(want.ID, 10, 64)
		if err != nil {
			return nil, backends.ObjectInfo{}, b.fail(ctx, "get", key, errKind(backends.ErrPrecondition, "version id %q is not a generation", want.ID))
		}
		gen = g
	}
	exact := opts.Exact && gen >= 0
	if length == 0 || (gen < 0 && want.ETag != "") {
		return b.getByAttrs(ctx, key, offset, length, want, exact)
	}
	r, err := b.openReader(ctx, key, offset, length, gen, exact)
	var ge *googleapi.Error
	if errors.As(err, &ge) && ge.Code == http.StatusRequestedRangeNotSatisfiable {
		return b.getByAttrs(ctx, key, offset, length, want, exact)
	}
	if err != nil {
		return nil, backends.ObjectInfo{}, err
	}
	a := r.Attrs
	info := backends.ObjectInfo{
		Key:         key,
		Size:        a.Size,
		ModTime:     a.LastModified,
		Version:     backends.Version{ID: strconv.FormatInt(a.Generation, 10)},
		ContentType: a.ContentType,
		Metadata:    lowerKeys(r.Metadata()),
	}
	// The response has no hash header when CRC32C reads as zero; an empty
	// object's CRC32C is zero indeed.
	if a.CRC32C != 0 || a.Size == 0 {
		info.Checksums.CRC32C = crcBytes(a.CRC32C)
	}
	if gen >= 0 {
		info.Version = want
	} else {
		attrs, err := b.bucket.Object(key).Generation(a.Generation).Attrs(ctx)
		switch {
		case err == nil:
			if attrs.Generation == a.Generation {
				info = toInfo(attrs)
			}
		case errors.Is(err, storage.ErrObjectNotExist) && ctx.Err() == nil:
			// Replaced since: the response's attributes stand.
		default:
			r.Close()
			return nil, backends.ObjectInfo{}, b.fail(ctx, "get", key, err)
		}
	}
	return b.body(ctx, key, r, offset, length, info), info, nil
}

// getByAttrs is GetRange by attributes first, then the bytes pinned to
// their generation. With exact the attributes are those of the generation
// want.ID names, current or not.
func (b *Backend) getByAttrs(ctx context.Context, key string, offset, length int64, want backends.Version, exact bool) (io.ReadCloser, backends.ObjectInfo, error) {
	obj := b.bucket.Object(key)
	if exact {
		gen, _ := strconv.ParseInt(want.ID, 10, 64) // parsed by GetRange
		obj = obj.Generation(gen)
	}
	attrs, err := obj.Attrs(ctx)
	if err != nil {
		return nil, backends.ObjectInfo{}, b.exactErr(ctx, "get", key, exact, err)
	}
	info := toInfo(attrs)
	if (want.ID != "" && want.ID != info.Version.ID) || (!exact && want.ETag != "" && want.ETag != info.Version.ETag) {
		return nil, backends.ObjectInfo{}, b.fail(ctx, "get", key, errKind(backends.ErrPrecondition, "have %s, want %s", info.Version, want))
	}
	if offset > info.Size {
		return nil, backends.ObjectInfo{}, b.fail(ctx, "get", key, errKind(backends.ErrInvalidRange, "offset %d beyond size %d", offset, info.Size))
	}
	if offset == info.Size || length == 0 {
		return io.NopCloser(strings.NewReader("")), info, nil
	}
	r, err := b.openReader(ctx, key, offset, length, attrs.Generation, exact)
	if err != nil {
		return nil, backends.ObjectInfo{}, err
	}
	return b.body(ctx, key, r, offset, length, info), info, nil
}

// openReader opens a ranged read. With gen >= 0 it only succeeds on that
// generation: the server checks the precondition (with exact: reads that
// generation, live or not) and the generation it reports is checked again
// here.
func (b *Backend) openReader(ctx context.Context, key string, offset, length, gen int64, exact bool) (*storage.Reader, error) {
	obj := b.bucket.Object(key)
	switch {
	case exact:
		obj = obj.Generation(gen)
	case gen >= 0:
		obj = obj.If(storage.Conditions{GenerationMatch: gen})
	}
	r, err := obj.NewRangeReader(ctx, offset, length, storage.WithDisableReaderChecksum())
	if err != nil {
		return nil, b.exactErr(ctx, "get", key, exact, err)
	}
	if gen >= 0 && r.Attrs.Generation != gen {
		r.Close()
		return nil, b.fail(ctx, "get", key, errKind(backends.ErrPrecondition, "generation %d served, %d asked", r.Attrs.Generation, gen))
	}
	return r, nil
}

// body wraps a reader so that its errors map onto the sentinels and, when
// the read covers the whole object and its CRC32C is known, the bytes are
// checked against it at the end (ErrChecksum).
func (b *Backend) body(ctx context.Context, key string, r *storage.Reader, offset, length int64, info backends.ObjectInfo) io.ReadCloser {
	bd := &body{ctx: ctx, b: b, key: key, r: r}
	if want, ok := crcValue(info.Checksums.CRC32C); ok && offset == 0 && (length < 0 || length >= info.Size) {
		bd.crc, bd.want = crc32.New(castagnoli), want
	}
	return bd
}

type body struct {
	ctx  context.Context
	b    *Backend
	key  string
	r    *storage.Reader
	crc  hash.Hash32 // nil: no check
	want uint32
}

func (bd *body) Read(p []byte) (int, error) {
	n, err := bd.r.Read(p)
	if bd.crc != nil {
		bd.crc.Write(p[:n])
	}
	switch {
	case err == io.EOF && bd.crc != nil && bd.crc.Sum32() != bd.want:
		return n, bd.b.fail(bd.ctx, "get", bd.key, errKind(backends.ErrChecksum, "crc32c %08x read, %08x stored", bd.crc.Sum32(), bd.want))
	case err != nil && err != io.EOF:
		return n, bd.b.fail(bd.ctx, "get", bd.key, err)
	}
	return n, err
}

func (bd *body) Close() error { return bd.r.Close() }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// toInfo converts the library's attributes.
func toInfo(a *storage.ObjectAttrs) backends.ObjectInfo {
	mod := a.Updated
	if mod.IsZero() {
		mod = a.Created
	}
	info := backends.ObjectInfo{
		Key:         a.Name,
		Size:        a.Size,
		ModTime:     mod,
		Version:     backends.Version{ID: strconv.FormatInt(a.Generation, 10), ETag: a.Etag},
		ContentType: a.ContentType,
		Metadata:    lowerKeys(a.Metadata),
	}
	info.Checksums.CRC32C = crcBytes(a.CRC32C)
	if len(a.MD5) > 0 {
		info.Checksums.MD5 = a.MD5
	}
	return info
}

func crcBytes(c uint32) []byte { return binary.BigEndian.AppendUint32(nil, c) }

func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// checkKey refuses keys GCS cannot name and the driver's reserved prefix.
func checkKey(key string) error {
	switch {
	case key == "" || key == "." || key == "..":
		return errKind(backends.ErrInvalidKey, "%q is not a GCS object name", key)
	case len(key) > 1024:
		return errKind(backends.ErrInvalidKey, "longer than 1024 bytes")
	case !utf8.ValidString(key):
		return errKind(backends.ErrInvalidKey, "not valid UTF-8")
	case strings.ContainsAny(key, "\r\n"):
		return errKind(backends.ErrInvalidKey, "carriage return or line feed")
	case strings.HasPrefix(key, reservedPrefix):
		return errKind(backends.ErrInvalidKey, "prefix %q is reserved for multipart uploads", reservedPrefix)
	}
	return nil
}

// fail wraps err in a *backends.Error whose Kind is the sentinel it maps
// to. Errors made by errKind keep their kind; errors already complete (from
// a nested call) are returned as they are. When ctx is done the cause also
// matches ctx.Err(), whatever the library made of the cancellation.
func (b *Backend) fail(ctx context.Context, op, key string, err error) error {
	var be *backends.Error
	if errors.As(err, &be) && be.Op != "" {
		return err
	}
	if p, ok := err.(*backends.Error); ok {
		return &backends.Error{Op: op, Store: b.String(), Key: key, Kind: p.Kind, Err: p.Err}
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	return backends.Errorf(op, b.String(), key, kindOf(op, err), err)
}

// exactErr is fail, except that for an exact read a missing object means
// the store does not hold the generation asked for: ErrPrecondition.
func (b *Backend) exactErr(ctx context.Context, op, key string, exact bool, err error) error {
	ferr := b.fail(ctx, op, key, err)
	if exact && errors.Is(ferr, backends.ErrNotExist) && ctx.Err() == nil {
		return backends.Errorf(op, b.String(), key, backends.ErrPrecondition, err)
	}
	return ferr
}

// errKind makes a cause of the given kind; fail completes it.
func errKind(kind error, format string, a ...any) error {
	return &backends.Error{Kind: kind, Err: fmt.Errorf(format, a...)}
}

func kindOf(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var be *backends.Error
	if errors.As(err, &be) {
		return be.Kind
	}
	switch {
	case errors.Is(err, storage.ErrBucketNotExist):
		return backends.ErrNoBucket
	case errors.Is(err, storage.ErrObjectNotExist):
		return backends.ErrNotExist
	}
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return nil
	}
	if ge.Code == http.StatusNotFound && (op == "put" || op == "list") {
		// Only the bucket can be missing for these.
		return backends.ErrNoBucket
	}
	return backends.KindForStatus(ge.Code)
}
