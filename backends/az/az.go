// Package az is the Azure Blob Storage driver: a backends.Backend and
// backends.Multipart over one container, storing block blobs only.
//
// # Credentials
//
// New takes, in this order: Options.ConnectionString or the environment
// variable AZURE_STORAGE_CONNECTION_STRING (shared key or SAS connection
// strings, as the Azure portal and Azurite print them); else an account name
// and key (Options.AccountName/AccountKey or AZURE_STORAGE_ACCOUNT and
// AZURE_STORAGE_KEY) for the endpoint Options.AccountURL, by default
// https://<account>.blob.core.windows.net; else Options.AccountURL alone when
// it carries a SAS token in its query. Azure AD credentials are not
// supported. Credentials never appear in String or in errors.
//
// # Keys
//
// A key is a blob name. Keys Azure cannot hold faithfully fail with
// backends.ErrInvalidKey before any request: the empty key, keys longer than
// 1,024 characters or not UTF-8, keys holding a backslash (the service reads
// it as "/"), an ASCII control character or U+FFFE/U+FFFF (XML listings
// cannot carry them; Azurite then fails every listing of the container), or
// ending in "." once trailing "/" are removed (the service drops trailing
// dots). Everything else, "a//b",
// "/lead", "x/../y" and "dir/" markers included, is stored as given.
//
// # Metadata
//
// Azure metadata names must be C# identifiers and are case-insensitive, so
// user metadata keys are stored encoded: bytes a-z, and 0-9 after the first
// byte, stand for themselves, every other byte b is written "_hh" with hh its
// two lower-case hex digits. "mtime" stays "mtime", "ferry-sha" becomes
// "ferry_2dsha", "_x" becomes "_5fx". Reading decodes names, after lower-casing
// them; a "_" not followed by two hex digits is kept, so that names written
// by other tools read as they are (lower-cased). Values must be printable
// ASCII without leading or trailing blanks (HTTP headers carry them).
//
// # Checksums
//
// Put computes the MD5 of the body in a first pass, sends it per request so
// that the service verifies the bytes it receives, and stores it as the
// blob's Content-MD5, which Stat, GetRange and List report. A CRC32C or MD5
// in PutOptions is compared against that first pass before anything is
// sent. Azure keeps no CRC32C.
//
// # Listing order
//
// Azure (Azurite at least) sorts names by UTF-16 code units, which puts
// characters above U+FFFF before U+E000-U+FFFF, unlike byte order. Listings
// restore byte order with a buffer that holds back only names in that
// situation (see reorder).
package az

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/ferryio/ferry/backends"
)

// Environment variables New reads when Options leave the field empty.
const (
	EnvConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
	EnvAccount          = "AZURE_STORAGE_ACCOUNT"
	EnvKey              = "AZURE_STORAGE_KEY"
)

// DefaultBlockSize is the default Options.BlockSize.
const DefaultBlockSize = 64 << 20

// Azure's limits for block blobs.
const (
	maxBlocks    = 50_000
	maxBlockSize = 4000 << 20
	maxKeyLen    = 1024
)

// putConcurrency bounds the blocks Put stages at once when its body is an
// io.ReaderAt (bodies that are only seekable are staged one at a time).
const putConcurrency = 4

// ErrNoCredentials is returned by New when no way to authenticate is
// configured.
var ErrNoCredentials = errors.New("az: no credentials: set " + EnvConnectionString +
	" (or " + EnvAccount + " and " + EnvKey + ")")

// Options configure New. See the package documentation for how the
// credential fields combine.
type Options struct {
	// Container is the blob container; required.
	Container string
	// ConnectionString is an Azure Storage connection string; default
	// $AZURE_STORAGE_CONNECTION_STRING.
	ConnectionString string
	// AccountName and AccountKey are a shared key, used when there is no
	// connection string; default $AZURE_STORAGE_ACCOUNT and
	// $AZURE_STORAGE_KEY.
	AccountName, AccountKey string
	// AccountURL is the blob service endpoint for the shared key, default
	// https://<account>.blob.core.windows.net. Without a key, a URL with a
	// SAS token in its query is used as is.
	AccountURL string
	// HTTPClient, when set, sends every request (for metrics); nil uses
	// the SDK's default transport.
	HTTPClient *http.Client
	// BlockSize is the largest object Put sends in one request, and the
	// size of the blocks it stages for larger ones (grown when an object
	// would need more than 50,000 blocks). Default DefaultBlockSize; at
	// most 4000 MiB.
	BlockSize int64
}

// Backend is an Azure Blob container. It is safe for concurrent use.
type Backend struct {
	c         *container.Client
	container string
	blockSize int64
}

var (
	_ backends.Backend   = (*Backend)(nil)
	_ backends.Multipart = (*Backend)(nil)
)

// New returns the backend for opts.Container. It sends no request: a missing
// container shows as backends.ErrNoBucket on the first call.
func New(ctx context.Context, opts Options) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Container == "" {
		return nil, errors.New("az: no container name")
	}
	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	if bs < 1 || bs > maxBlockSize {
		return nil, fmt.Errorf("az: block size %d out of range [1, %d]", bs, int64(maxBlockSize))
	}
	svc, err := newService(opts)
	if err != nil {
		return nil, err
	}
	return &Backend{c: svc.NewContainerClient(opts.Container), container: opts.Container, blockSize: bs}, nil
}

// newService builds the service client from the first credential source
// that is configured.
func newService(o Options) (*service.Client, error) {
	co := &service.ClientOptions{}
	co.Telemetry.ApplicationID = "ferry"
	if o.HTTPClient != nil {
		co.Transport = o.HTTPClient
	}
	if cs := or(o.ConnectionString, os.Getenv(EnvConnectionString)); cs != "" {
		c, err := service.NewClientFromConnectionString(cs, co)
		if err != nil {
			// The SDK's message never repeats the string, which holds the key.
			return nil, fmt.Errorf("az: %s: %w", EnvConnectionString, err)
		}
		return c, nil
	}
	name, key := or(o.AccountName, os.Getenv(EnvAccount)), or(o.AccountKey, os.Getenv(EnvKey))
	if name != "" && key != "" {
		cred, err := service.NewSharedKeyCredential(name, key)
		if err != nil {
			return nil, fmt.Errorf("az: %s: %w", EnvKey, err)
		}
		u := or(o.AccountURL, "https://"+name+".blob.core.windows.net/")
		return service.NewClientWithSharedKeyCredential(u, cred, co)
	}
	if u, err := url.Parse(o.AccountURL); o.AccountURL != "" && err == nil && u.Query().Has("sig") {
		return service.NewClientWithNoCredential(o.AccountURL, co)
	}
	return nil, ErrNoCredentials
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// String returns "az://<container>".
func (b *Backend) String() string { return "az://" + b.container }

// checkKey returns an ErrInvalidKey error for keys Azure cannot hold as
// they are (see the package documentation).
func (b *Backend) checkKey(op, key string) error {
	var why string
	switch trimmed := strings.TrimRight(key, "/"); {
	case key == "":
		why = "empty key"
	case !utf8.ValidString(key):
		why = "not UTF-8"
	case utf8.RuneCountInString(key) > maxKeyLen:
		why = "longer than 1024 characters"
	case strings.ContainsRune(key, '\\'):
		why = `Azure reads "\" as "/"`
	case strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffe || r == 0xffff }):
		why = "control character or non-character (listings could not carry it)"
	case strings.HasSuffix(trimmed, "."):
		why = "Azure drops trailing dots"
	default:
		return nil
	}
	return backends.Errorf(op, b.String(), key, backends.ErrInvalidKey, errors.New(why))
}

// fail wraps err from the SDK for op on key: the sentinel its error code or
// status maps to, and context.Canceled (or DeadlineExceeded) whenever ctx is
// done, whatever the transport made of it.
func (b *Backend) fail(ctx context.Context, op, key string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	return backends.Errorf(op, b.String(), key, kindOf(err), err)
}

// kindOf maps an Azure error onto a sentinel, by error code first and by
// HTTP status second; nil when none applies.
func kindOf(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return nil
	}
	switch bloberror.Code(re.ErrorCode) {
	case bloberror.BlobNotFound:
		return backends.ErrNotExist
	case bloberror.ContainerNotFound:
		return backends.ErrNoBucket
	case bloberror.ConditionNotMet:
		return backends.ErrPrecondition
	case bloberror.MD5Mismatch:
		return backends.ErrChecksum
	case bloberror.InvalidRange:
		return backends.ErrInvalidRange
	case bloberror.AuthenticationFailed, bloberror.AuthorizationFailure,
		bloberror.AuthorizationPermissionMismatch, bloberror.InsufficientAccountPermissions:
		return backends.ErrPermission
	}
	return backends.KindForStatus(re.StatusCode)
}
