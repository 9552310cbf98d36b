package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ferryio/ferry/backends/storeurl"
	"github.com/ferryio/ferry/fs/load"
	"github.com/ferryio/ferry/fs/objmeta"
	"github.com/ferryio/ferry/fs/progress"
	"github.com/ferryio/ferry/fs/store"
)

// storeFlags are the flags of ferry store.
type storeFlags struct {
	commonFlags
	transferFlags
	journalDir     string
	abandonedAfter time.Duration
}

func storeCommand() *command {
	return &command{
		name:  "store",
		short: "upload a directory to a store prefix",
		args:  "[DIR URL]",
		summary: "upload a directory to a store prefix (DATA_DIR to DATA_STORE_* without arguments);\n" +
			"idempotent, resumes after a kill; symlinks and special files are skipped with a warning",
		env: append([]envDoc{
			{"DATA_DIR", "the directory to upload (without arguments)"},
		}, append(transferEnv, storeEnv...)...),
		setup: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			f := &storeFlags{}
			f.register(fs)
			return f.run
		},
	}
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	f.commonFlags.register(fs)
	f.transferFlags.register(fs, store.DefaultConcurrency, store.DefaultPartSize,
		"requests in flight at once, parts and files together (memory: ~150 KiB each on S3, whatever the part size)",
		"multipart part `size` (e.g. 16MiB); raised to the store's minimum and limit")
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
func mtimeFormat(provider string) objmeta.MtimeFormat {
	switch provider {
	case storeurl.S3:
		return objmeta.MtimeUnixFloat
	case storeurl.GCS:
		return objmeta.MtimeRFC3339Goog
	}
	return objmeta.MtimeRFC3339
}
