// Package open builds a backend from a storeurl.Location: the driver for
// its provider, seen through its prefix. It is the one place that knows
// every driver, so that cmd stays small and fs knows none.
package open

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/az"
	"github.com/ferryio/ferry/backends/gcs"
	"github.com/ferryio/ferry/backends/local"
	"github.com/ferryio/ferry/backends/prefix"
	"github.com/ferryio/ferry/backends/s3"
	"github.com/ferryio/ferry/backends/storeurl"
)

// Options tune the drivers beyond what a Location says.
type Options struct {
	// HTTPClient, when set, is used by the network drivers (for request
	// counting and metrics). nil keeps each driver's default.
	HTTPClient *http.Client
}

// Bucket opens the driver for loc's bucket, without its prefix.
func Bucket(ctx context.Context, loc storeurl.Location, opts Options) (backends.Backend, error) {
	switch loc.Provider {
	case storeurl.S3:
		return s3.New(ctx, s3.Options{
			Bucket: loc.Bucket, Endpoint: loc.Endpoint, Region: loc.Region,
			KMSKeyID: loc.KMSKeyID, HTTPClient: opts.HTTPClient,
		})
	case storeurl.GCS:
		return gcs.New(ctx, gcs.Options{Bucket: loc.Bucket, Endpoint: loc.Endpoint, HTTPClient: opts.HTTPClient})
	case storeurl.Azure:
		return az.New(ctx, az.Options{Container: loc.Bucket, HTTPClient: opts.HTTPClient})
	case storeurl.Local:
		return local.New(loc.Bucket)
	}
	return nil, fmt.Errorf("%w: unknown provider %q", storeurl.ErrConfig, loc.Provider)
}

// Open opens loc: its bucket's driver seen through its prefix, so that keys
// of the returned backend are relative to loc.Prefix.
func Open(ctx context.Context, loc storeurl.Location, opts Options) (backends.Backend, error) {
	b, err := Bucket(ctx, loc, opts)
	if err != nil {
		return nil, err
	}
	return prefix.New(b, loc.Prefix), nil
}
