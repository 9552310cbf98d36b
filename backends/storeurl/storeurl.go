// Package storeurl parses where a dataset lives: a store URL
// (s3://bucket/prefix, gs://bucket/prefix, az://container/prefix,
// file:///abs/dir) or the DATA_STORE_* environment contract, into a Location.
// It reads no environment itself: callers pass a lookup function, so that
// flags can override env and tests need no process state.
package storeurl

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// Providers.
const (
	S3    = "s3"
	GCS   = "gcs"
	Azure = "az"
	Local = "local"
)

// ErrConfig is matched by every error of this package.
var ErrConfig = errors.New("invalid store configuration")

// ErrNoStore is returned by FromEnv when no provider is configured at all:
// the pre-downloaded mode, in which ferry touches no store.
var ErrNoStore = errors.New("no store configured (pre-downloaded mode)")

// Location is a resolved store address.
type Location struct {
	Provider string // S3, GCS, Azure or Local
	// Bucket is the bucket or container name; for Local, the absolute path
	// of the directory acting as the bucket.
	Bucket string
	// Prefix is the key prefix, empty or ending in "/".
	Prefix   string
	Endpoint string // S3-compatible endpoint URL (s3), or API endpoint override (gcs)
	Region   string // s3
	KMSKeyID string // s3: SSE-KMS key for uploads
}

// String renders the location as a store URL (no credentials are ever part
// of a Location).
func (l Location) String() string {
	switch l.Provider {
	case Local:
		return "file://" + filepath.ToSlash(filepath.Join(l.Bucket, l.Prefix))
	case GCS:
		return "gs://" + l.Bucket + "/" + l.Prefix
	default:
		return l.Provider + "://" + l.Bucket + "/" + l.Prefix
	}
}

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
}

// normPrefix makes a prefix name a folder: no leading "/", a trailing "/"
// when non-empty.
func normPrefix(p string) string {
	p = strings.TrimLeft(p, "/")
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// Parse parses a store URL. The path after the bucket is a folder-like
// prefix: "s3://b/data" and "s3://b/data/" both mean keys under "data/".
func Parse(raw string) (Location, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Location{}, errorf("store URL %q: want s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///abs/dir", raw)
	}
	switch strings.ToLower(scheme) {
	case "file":
		u, err := url.Parse(raw)
		if err != nil || u.Host != "" {
			return Location{}, errorf("store URL %q: a file URL is file:///absolute/path (three slashes)", raw)
		}
		if !filepath.IsAbs(u.Path) {
			return Location{}, errorf("store URL %q: the path must be absolute", raw)
		}
		return Location{Provider: Local, Bucket: filepath.Clean(u.Path)}, nil
	case "s3", "gs", "gcs", "az", "azure":
	default:
		return Location{}, errorf("store URL %q: unknown scheme %q (want s3, gs, az or file)", raw, scheme)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return Location{}, errorf("store URL %q: no bucket name", raw)
	}
	if strings.ContainsAny(bucket, "?#@:") {
		return Location{}, errorf("store URL %q: bucket %q is not a valid bucket name", raw, bucket)
	}
	provider := map[string]string{"s3": S3, "gs": GCS, "gcs": GCS, "az": Azure, "azure": Azure}[strings.ToLower(scheme)]
	return Location{Provider: provider, Bucket: bucket, Prefix: normPrefix(prefix)}, nil
}

// Env variable names of the container contract.
const (
	EnvURL      = "DATA_STORE_URL"
	EnvProvider = "DATA_STORE_PROVIDER"
	EnvBucket   = "DATA_STORE_BUCKET"
	EnvPrefix   = "DATA_STORE_PREFIX"
	EnvEndpoint = "DATA_STORE_ENDPOINT"
	EnvRegion   = "DATA_STORE_REGION"
	EnvKMSKeyID = "DATA_STORE_KMS_KEY_ID"
)

// FromEnv resolves the DATA_STORE_* contract through lookup (os.LookupEnv,
// or a flag-aware wrapper). It returns ErrNoStore when neither
// DATA_STORE_URL nor DATA_STORE_PROVIDER is set (or the provider is empty),
// and an ErrConfig error naming the variable when a value is missing,
// unknown or contradicts another.
func FromEnv(lookup func(string) (string, bool)) (Location, error) {
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	rawURL, provider := get(EnvURL), strings.ToLower(get(EnvProvider))
	bucket, prefix := get(EnvBucket), get(EnvPrefix)

	var loc Location
	switch {
	case rawURL != "":
		l, err := Parse(rawURL)
		if err != nil {
			return Location{}, fmt.Errorf("%s: %w", EnvURL, err)
		}
		if provider != "" && canonical(provider) != l.Provider {
			return Location{}, errorf("%s=%s contradicts %s (provider %s)", EnvProvider, provider, EnvURL, l.Provider)
		}
		if bucket != "" && bucket != l.Bucket {
			return Location{}, errorf("%s=%s contradicts %s (bucket %s)", EnvBucket, bucket, EnvURL, l.Bucket)
		}
		if prefix != "" && normPrefix(prefix) != l.Prefix {
			return Location{}, errorf("%s=%s contradicts %s (prefix %q)", EnvPrefix, prefix, EnvURL, l.Prefix)
		}
		loc = l
	case provider == "":
		return Location{}, ErrNoStore
	default:
		p := canonical(provider)
		if p == "" {
			return Location{}, errorf("%s=%s: unknown provider (want s3, gcs, az or local, or empty for pre-downloaded mode)", EnvProvider, provider)
		}
		if bucket == "" {
			return Location{}, errorf("%s is required when %s=%s", EnvBucket, EnvProvider, provider)
		}
		loc = Location{Provider: p, Bucket: bucket, Prefix: normPrefix(prefix)}
		if p == Local {
			if !filepath.IsAbs(bucket) {
				return Location{}, errorf("%s=%s: for the local provider it must be an absolute directory path", EnvBucket, bucket)
			}
			loc.Bucket = filepath.Clean(bucket)
		}
	}
	return WithOptions(loc, get(EnvEndpoint), get(EnvRegion), get(EnvKMSKeyID))
}

// WithOptions applies endpoint, region and KMS key (from flags or env) to
// loc, refusing values its provider does not use. Empty values change nothing.
func WithOptions(loc Location, endpoint, region, kms string) (Location, error) {
	if endpoint != "" {
		if loc.Provider != S3 && loc.Provider != GCS {
			return Location{}, errorf("%s is set but provider %s does not use an endpoint", EnvEndpoint, loc.Provider)
		}
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Location{}, errorf("%s=%s: want an http:// or https:// URL", EnvEndpoint, endpoint)
		}
		loc.Endpoint = endpoint
	}
	if region != "" {
		if loc.Provider != S3 {
			return Location{}, errorf("%s is set but only provider s3 uses a region", EnvRegion)
		}
		loc.Region = region
	}
	if kms != "" {
		if loc.Provider != S3 {
			return Location{}, errorf("%s is set but only provider s3 supports SSE-KMS", EnvKMSKeyID)
		}
		loc.KMSKeyID = kms
	}
	return loc, nil
}

func canonical(p string) string {
	switch p {
	case "s3":
		return S3
	case "gcs", "gs":
		return GCS
	case "az", "azure":
		return Azure
	case "local", "file":
		return Local
	}
	return ""
}
