package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/metered"
	"github.com/ferryio/ferry/backends/open"
	"github.com/ferryio/ferry/backends/storeurl"
	"github.com/ferryio/ferry/fs/progress"
	"golang.org/x/term"
)

// storeEnv documents the DATA_STORE_* contract for every command's help.
var storeEnv = []envDoc{
	{storeurl.EnvURL, "store URL; or the three below"},
	{storeurl.EnvProvider, "s3, gcs, az or local; empty: pre-downloaded mode (load/store touch no store)"},
	{storeurl.EnvBucket, "bucket or container (for local: an absolute directory)"},
	{storeurl.EnvPrefix, "key prefix (a folder)"},
	{storeurl.EnvEndpoint, "S3-compatible endpoint URL (path-style addressing), or GCS API endpoint"},
	{storeurl.EnvRegion, "S3 region"},
	{storeurl.EnvKMSKeyID, "S3 SSE-KMS key id for uploads"},
	{"AWS_*, AWS_ENDPOINT_URL_S3", "the AWS SDK's own credentials chain and settings"},
	{"GOOGLE_APPLICATION_CREDENTIALS", "GCS service account file; STORAGE_EMULATOR_HOST for an emulator"},
	{"AZURE_STORAGE_CONNECTION_STRING", "Azure connection string (or AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY)"},
}

// commonFlags are the flags every job shares: where the store is (beyond
// its URL) and how to log.
type commonFlags struct {
	endpoint, region, kms string
	logLevel, logFormat   string
	quiet                 bool
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.endpoint, "endpoint", "", "S3-compatible endpoint URL (overrides DATA_STORE_ENDPOINT)")
	fs.StringVar(&c.region, "region", "", "S3 region (overrides DATA_STORE_REGION)")
	fs.StringVar(&c.kms, "kms-key-id", "", "S3 SSE-KMS key id for uploads (overrides DATA_STORE_KMS_KEY_ID)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "output format: text or json")
	fs.BoolVar(&c.quiet, "quiet", false, "no periodic progress, only warnings, errors and the summary")
}

// location resolves the store: rawURL when given (a positional argument),
// else the DATA_STORE_* environment; flags override env. It returns an
// error matching storeurl.ErrNoStore in pre-downloaded mode.
func (c *commonFlags) location(rawURL string) (storeurl.Location, error) {
	lookup := func(k string) (string, bool) {
		flagVal := map[string]string{storeurl.EnvEndpoint: c.endpoint, storeurl.EnvRegion: c.region, storeurl.EnvKMSKeyID: c.kms}[k]
		if flagVal != "" {
			return flagVal, true
		}
		return os.LookupEnv(k)
	}
	if rawURL == "" {
		loc, err := storeurl.FromEnv(lookup)
		if err != nil && !errors.Is(err, storeurl.ErrNoStore) {
			return loc, &exitError{code: exitUsage, err: err}
		}
		return loc, err
	}
	loc, err := storeurl.Parse(rawURL)
	if err == nil {
		get := func(k string) string { v, _ := lookup(k); return v }
		loc, err = storeurl.WithOptions(loc, get(storeurl.EnvEndpoint), get(storeurl.EnvRegion), get(storeurl.EnvKMSKeyID))
	}
	if err != nil {
		return loc, &exitError{code: exitUsage, err: err}
	}
	return loc, nil
}

// openStore opens loc through its prefix, counting requests.
func openStore(ctx context.Context, loc storeurl.Location, obs metered.Observer) (backends.Backend, *metered.Counts, error) {
	b, err := open.Open(ctx, loc, open.Options{})
	if err != nil {
		if errors.Is(err, storeurl.ErrConfig) {
			return nil, nil, &exitError{code: exitUsage, err: err}
		}
		if be := (*backends.Error)(nil); errors.As(err, &be) {
			return nil, nil, err // it names the operation and the store
		}
		return nil, nil, fmt.Errorf("open %s: %w", loc, err)
	}
	mb, counts := metered.New(b, obs)
	return mb, counts, nil
}

// logger builds the slog logger for the chosen level and format, writing
// to out (stdout, as the container contract asks).
func (c *commonFlags) logger(out io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case progress.Text:
		return slog.New(slog.NewTextHandler(out, opts)), nil
	case progress.JSON:
		return slog.New(slog.NewJSONHandler(out, opts)), nil
	}
	return nil, usageErrorf("--log-format %q: want text or json", c.logFormat)
}

// reporter starts progress reporting for op on out.
func (c *commonFlags) reporter(op string, out io.Writer, t *progress.Tracker) *progress.Reporter {
	opts := progress.Options{Op: op, Format: c.logFormat}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !c.quiet {
		opts.Terminal = true
	}
	if c.quiet {
		opts.Interval = 1 << 62
	}
	return progress.Start(out, t, opts)
}

// envInt reads an integer tuning variable (FERRY_CONCURRENCY and the like)
// as a flag default; a malformed value is reported by name.
func envInt(name string, def int) (int, error) {
	v, ok := os.LookupEnv(name)
	if !ok || strings.TrimSpace(v) == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0, usageErrorf("%s=%q: want a positive whole number", name, v)
	}
	return n, nil
}

// transferFlags are the flags load and store share: requests in flight and
// part size, with defaults from FERRY_CONCURRENCY and FERRY_PART_SIZE, and
// the dry-run and delete switches. A malformed env default is kept in
// envErr and reported when the command runs, as a usage error.
type transferFlags struct {
	concurrency    int
	partSize       sizeFlag
	dryRun, delete bool
	envErr         error
}

func (t *transferFlags) register(fs *flag.FlagSet, defConcurrency int, defPartSize int64, concurrencyHelp, partSizeHelp string) {
	conc, err := envInt("FERRY_CONCURRENCY", defConcurrency)
	t.envErr = errors.Join(t.envErr, err)
	t.partSize = sizeFlag(defPartSize)
	if v, ok := os.LookupEnv("FERRY_PART_SIZE"); ok && v != "" {
		if err := t.partSize.Set(v); err != nil {
			t.envErr = errors.Join(t.envErr, usageErrorf("FERRY_PART_SIZE=%q: %v", v, err))
		}
	}
	fs.IntVar(&t.concurrency, "concurrency", conc, concurrencyHelp)
	fs.Var(&t.partSize, "part-size", partSizeHelp)
}

// transferEnv documents the env defaults of transferFlags.
var transferEnv = []envDoc{
	{"FERRY_CONCURRENCY", "default of --concurrency"},
	{"FERRY_PART_SIZE", "default of --part-size"},
}
