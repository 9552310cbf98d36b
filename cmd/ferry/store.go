package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ferryio/ferry/backends/storeurl"
	"github.com/ferryio/ferry/fs/load"
	"github.com/ferryio/ferry/fs/progress"
	"github.com/ferryio/ferry/fs/store"
)

// storeFlags are the flags of ferry store.
type storeFlags struct {
	commonFlags
	concurrency    int
	partSize       sizeFlag
	dryRun, delete bool
	journalDir     string
	abandonedAfter time.Duration
	envErr         error // a malformed FERRY_* default, reported when run
}

func storeCommand() *command {
	return &command{
		name: "store",
		args: "[DIR URL]",
		summary: "upload a directory to a store prefix (DATA_DIR to DATA_STORE_* without arguments);\n" +
			"idempotent, resumes after a kill; symlinks and special files are skipped with a warning",
		env: append([]envDoc{
			{"DATA_DIR", "the directory to upload (without arguments)"},
			{"FERRY_CONCURRENCY", "default of --concurrency"},
			{"FERRY_PART_SIZE", "default of --part-size"},
		}, storeEnv...),
		setup: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			f := &storeFlags{}
			f.register(fs)
			return f.run
		},
	}
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	f.commonFlags.register(fs)
	conc, err := envInt("FERRY_CONCURRENCY", store.DefaultConcurrency)
	f.envErr = errors.Join(f.envErr, err)
	f.partSize = sizeFlag(store.DefaultPartSize)
	if v, ok := os.LookupEnv("FERRY_PART_SIZE"); ok && v != "" {
		if err := f.partSize.Set(v); err != nil {
			f.envErr = errors.Join(f.envErr, usageErrorf("FERRY_PART_SIZE=%q: %v", v, err))
		}
	}
	fs.IntVar(&f.concurrency, "concurrency", conc, "requests in flight at once (parts and files together)")
	fs.Var(&f.partSize, "part-size", "multipart part `size` (e.g. 16MiB); raised to the store's minimum and limit")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print what would be uploaded, deleted or aborted, change nothing (exit 4 when there is something)")
	fs.BoolVar(&f.delete, "delete", false, "delete keys under the prefix that are not present locally")
	fs.StringVar(&f.journalDir, "journal-dir", "", "where the upload journal lives (default DIR/"+store.JournalDirName+"); must survive a restart")
	fs.DurationVar(&f.abandonedAfter, "abandoned-after", store.DefaultAbandonedAfter, "abort pending multipart uploads under the prefix older than this")
}

func (f *storeFlags) run(ctx context.Context, args []string, out io.Writer) error {
	if f.envErr != nil {
		return f.envErr
	}
	if f.concurrency <= 0 || f.abandonedAfter <= 0 {
		return usageErrorf("--concurrency and --abandoned-after must be positive")
	}
	log, err := f.logger(out)
	if err != nil {
		return err
	}
	var dir, rawURL string
	switch len(args) {
	case 0:
		dir = os.Getenv("DATA_DIR")
		if dir == "" {
			return usageErrorf("DATA_DIR is not set (or give DIR and URL as arguments)")
		}
	case 2:
		dir, rawURL = args[0], args[1]
	default:
		return usageErrorf("store takes no arguments or two (DIR URL), got %d", len(args))
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usageErrorf("%s is not a directory", dir)
	}
	loc, err := f.location(rawURL)
	if errors.Is(err, storeurl.ErrNoStore) {
		fmt.Fprintf(out, "store: no store configured (%s empty): pre-downloaded mode, nothing to upload\n", storeurl.EnvProvider)
		return nil
	}
	if err != nil {
		return err
	}
	b, counts, err := openStore(ctx, loc, nil)
	if err != nil {
		return err
	}
	if closer, ok := b.(io.Closer); ok {
		defer closer.Close()
	}
	tracker := &progress.Tracker{}
	rep := f.reporter("store", out, tracker)
	log.Debug("storing", "dir", dir, "store", loc.String())
	res, err := store.Run(ctx, store.Options{
		Dir: dir, Store: b, Target: loc.String(), MtimeFormat: mtimeFormat(loc.Provider),
		JournalDir: f.journalDir, Exclude: []string{load.WorkDir}, Concurrency: f.concurrency, PartSize: int64(f.partSize),
		Delete: f.delete, DryRun: f.dryRun, AbandonedAfter: f.abandonedAfter,
		Tracker: tracker, Events: rep, Logger: log,
	})
	extra := map[string]any{
		"uploaded": res.Uploaded, "up_to_date": res.UpToDate, "bytes_sent": res.UploadedBytes,
		"requests": counts.String(),
	}
	for k, v := range map[string]int{"deleted": res.Deleted, "not_stored": res.Skipped, "failed": res.Failed,
		"resumed": res.Resumed, "parts_reused": res.PartsReused, "aborted_uploads": res.Aborted} {
		if v > 0 {
			extra[k] = v
		}
	}
	if f.dryRun {
		extra["changes"] = res.Changes
	}
	event := "done"
	switch {
	case err != nil:
		event = "failed"
	case f.dryRun:
		event = "dry-run"
	}
	rep.Stop(event, extra)
	if err != nil {
		return err
	}
	if f.dryRun && res.Changes > 0 {
		return &exitError{code: exitChanges, err: fmt.Errorf("dry run: %d change(s) to make", res.Changes)}
	}
	return nil
}

// mtimeFormat is rclone's mtime metadata format on each provider.
func mtimeFormat(provider string) store.MtimeFormat {
	switch provider {
	case storeurl.S3:
		return store.MtimeUnixFloat
	case storeurl.GCS:
		return store.MtimeRFC3339Goog
	}
	return store.MtimeRFC3339
}

// sizeFlag is a byte size flag: a whole number of bytes with an optional
// binary or decimal unit ("16MiB", "64M", "1048576").
type sizeFlag int64

func (s *sizeFlag) String() string { return progress.Bytes(int64(*s)) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

// parseSize parses a positive byte size with an optional unit: K, M, G, T
// (powers of 1024, also written KiB, MiB...) or KB, MB, GB, TB (powers of
// 1000), case-insensitive.
func parseSize(v string) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive size such as 16MiB", v)
	}
	mult := map[string]int64{"": 1, "B": 1,
		"K": 1 << 10, "KI": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MI": 1 << 20, "MIB": 1 << 20,
		"G": 1 << 30, "GI": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TI": 1 << 40, "TIB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q (want K, M, G, T, KiB..., or KB...)", v, unit)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: too large", v)
	}
	return n * mult, nil
}
