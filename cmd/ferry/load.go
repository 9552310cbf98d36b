package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/ferryio/ferry/backends/storeurl"
	"github.com/ferryio/ferry/fs/load"
	"github.com/ferryio/ferry/fs/progress"
)

// loadFlags are the flags of ferry load.
type loadFlags struct {
	commonFlags
	transferFlags
	skipInvalidKeys bool
	manifest        string
	manifestOut     string
}

func loadCommand() *command {
	return &command{
		name:  "load",
		short: "materialise every object under a store prefix into a directory",
		args:  "[URL DIR]",
		summary: "materialise every object under a store prefix into a directory (DATA_STORE_* into DATA_DIR\n" +
			"without arguments); idempotent, resumes after a kill, verified; exit 3: invalid keys, 4: dry-run changes",
		env: append([]envDoc{
			{"DATA_DIR", "the directory to fill (without arguments)"},
		}, append(transferEnv, storeEnv...)...),
		setup: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			f := &loadFlags{}
			f.register(fs)
			return f.run
		},
	}
}

func (f *loadFlags) register(fs *flag.FlagSet) {
	f.commonFlags.register(fs)
	f.transferFlags.register(fs, load.DefaultConcurrency, load.DefaultPartSize,
		"requests in flight at once (ranged GETs and HEADs, parts and files together: a slot a file no longer needs goes to the next); "+
			"memory: one copy buffer of min(128KiB, part size) per GET, one more per file read back (MD5, resumed parts), "+
			"so at most 2 x this x 128KiB (4MiB at 16)",
		"size of the ranged GETs of large objects and the unit of resume (e.g. 8MiB; at least 64KiB)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print what would be fetched, repaired or deleted, change nothing (exit 4 when there is something)")
	fs.BoolVar(&f.delete, "delete", false, "delete local files and directories that are not in the store")
	fs.BoolVar(&f.skipInvalidKeys, "skip-invalid-keys", false, "keys that cannot be mapped to safe file names are reported but do not fail the run (exit 0, not 3)")
	fs.StringVar(&f.manifest, "manifest", "",
		"load exactly the snapshot this manifest describes: objects changed since are read at their recorded version where the store "+
			"keeps versions (versioned S3 bucket, GCS object versioning), else the run fails naming them and loads nothing")
	fs.StringVar(&f.manifestOut, "manifest-out", "",
		"write a manifest of what was loaded (key, size, version and version id, checksums) to this file and print its digest")
}

func (f *loadFlags) run(ctx context.Context, args []string, out io.Writer) error {
	if f.envErr != nil {
		return f.envErr
	}
	if f.concurrency <= 0 {
		return usageErrorf("--concurrency must be positive")
	}
	if int64(f.partSize) < load.MinPartSize {
		return usageErrorf("--part-size must be at least %s", progress.Bytes(load.MinPartSize))
	}
	log, err := f.logger(out)
	if err != nil {
		return err
	}
	var dir, rawURL string
	switch len(args) {
	case 0:
		if dir = os.Getenv("DATA_DIR"); dir == "" {
			return usageErrorf("DATA_DIR is not set (or give URL and DIR as arguments)")
		}
	case 2:
		rawURL, dir = args[0], args[1]
	default:
		return usageErrorf("load takes no arguments or two (URL DIR), got %d", len(args))
	}
	loc, err := f.location(rawURL)
	if errors.Is(err, storeurl.ErrNoStore) {
		return preDownloaded(dir, out)
	}
	if err != nil {
		return err
	}
	var manifest *load.Manifest
	if f.manifest != "" {
		if manifest, err = load.ReadManifest(f.manifest); err != nil {
			return usageErrorf("--manifest: %v", err)
		}
	}
	b, counts, err := openStore(ctx, loc, nil)
	if err != nil {
		return err
	}
	if closer, ok := b.(io.Closer); ok {
		defer closer.Close()
	}
	tracker := &progress.Tracker{}
	rep := f.reporter("load", out, tracker)
	log.Debug("loading", "store", loc.String(), "dir", dir)
	res, err := load.Run(ctx, b, dir, load.Options{
		Concurrency: f.concurrency, PartSize: int64(f.partSize),
		Delete: f.delete, DryRun: f.dryRun, Manifest: manifest,
		Tracker: tracker, Logger: log,
		Notify: func(e load.Event) { notify(ctx, log, rep, e) },
	})
	extra := map[string]any{
		"fetched": res.Fetched, "up_to_date": res.UpToDate, "bytes_read": counts.BytesRead(),
		"requests": counts.String(),
	}
	counted := map[string]int{"deleted": res.Deleted, "failed": res.Failed, "invalid_keys": len(res.Invalid),
		"verified": res.Verified, "unverified": res.Unverified}
	if f.dryRun {
		delete(extra, "fetched")
		counted["to_fetch"], counted["to_delete"], counted["deleted"] = res.Fetched, res.Deleted, 0
	}
	for k, v := range counted {
		if v > 0 {
			extra[k] = v
		}
	}
	event := "done"
	switch {
	case f.dryRun:
		event = "dry-run"
	case err != nil && !errors.Is(err, load.ErrInvalidKeys):
		event = "failed"
	}
	rep.Stop(event, extra)
	if f.manifestOut != "" && res.Loaded != nil {
		digest, werr := load.WriteManifest(f.manifestOut, res.Loaded)
		if werr != nil {
			return errors.Join(err, fmt.Errorf("--manifest-out: %w", werr))
		}
		rep.Event("manifest", fmt.Sprintf("manifest %s %s (%d objects)", f.manifestOut, digest, len(res.Loaded.Objects)),
			map[string]any{"file": f.manifestOut, "digest": digest, "objects": len(res.Loaded.Objects)})
	}
	switch {
	case errors.Is(err, load.ErrChanges):
		return &exitError{code: exitChanges, err: err}
	case errors.Is(err, load.ErrInvalidKeys) && f.skipInvalidKeys:
		return nil
	case errors.Is(err, load.ErrInvalidKeys):
		return &exitError{code: exitInvalidKeys, err: fmt.Errorf("%w (--skip-invalid-keys accepts this)", err)}
	}
	return err
}

// preDownloaded is the mode without a store: DATA_DIR is used as it is.
func preDownloaded(dir string, out io.Writer) error {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("pre-downloaded mode (%s empty) but %s is not a directory", storeurl.EnvProvider, dir)
	}
	fmt.Fprintf(out, "load: no store configured (%s empty): pre-downloaded mode, using %s as it is\n", storeurl.EnvProvider, dir)
	return nil
}

// notify prints a load event at its level: text lines through the
// reporter, or JSON with the key, path and error as fields.
func notify(ctx context.Context, log *slog.Logger, rep *progress.Reporter, e load.Event) {
	if !log.Enabled(ctx, e.Level) {
		return
	}
	fields := map[string]any{"level": e.Level.String()}
	if e.Key != "" {
		fields["key"] = e.Key
	}
	if e.Path != "" {
		fields["path"] = e.Path
	}
	if e.Size > 0 {
		fields["size"] = e.Size
	}
	if e.Err != nil {
		fields["error"] = e.Err.Error()
	}
	rep.Event(e.Kind, e.Msg, fields)
}
