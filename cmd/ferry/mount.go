package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/cache/block"
	"github.com/ferryio/ferry/cache/disktier"
	"github.com/ferryio/ferry/fs/mount"
	"github.com/ferryio/ferry/fs/progress"
)

// mountFlags are the flags of ferry mount.
type mountFlags struct {
	commonFlags
	uid, gid          int
	fileMode, dirMode modeFlag
	allowOther        bool
	metadataTTL       ttlFlag
	cacheMemory       sizeFlag
	cacheDir          string
	cacheSize         sizeFlag
	blockSize         sizeFlag
	readahead         sizeFlag
	readaheadMemory   sizeFlag
	concurrency       int
	metricsAddr       string
	readWrite         bool
	writeBack         time.Duration
}

// probeTimeout bounds the start-up check that the store answers.
const probeTimeout = 30 * time.Second

func mountCommand() *command {
	return &command{
		name: "mount",
		args: "URL MOUNTPOINT",
		summary: "mount a store prefix at MOUNTPOINT (read-only, or --read-write), contents fetched on demand\n" +
			"through a block cache; runs in the foreground until SIGINT/SIGTERM or fusermount3 -u",
		env: storeEnv,
		setup: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			f := &mountFlags{}
			f.register(fs)
			return f.run
		},
	}
}

func (f *mountFlags) register(fs *flag.FlagSet) {
	f.commonFlags.register(fs)
	f.fileMode, f.dirMode = mount.DefaultFileMode, mount.DefaultDirMode
	f.metadataTTL = ttlFlag(time.Minute)
	f.cacheMemory, f.cacheSize = 256<<20, 10<<30
	f.blockSize = block.DefaultBlockSize
	f.readahead, f.readaheadMemory = mount.DefaultReadahead, 4*mount.DefaultReadahead
	fs.IntVar(&f.uid, "uid", os.Getuid(), "owner of every file and directory")
	fs.IntVar(&f.gid, "gid", os.Getgid(), "group of every file and directory")
	fs.Var(&f.fileMode, "file-mode", "permission bits of files, octal")
	fs.Var(&f.dirMode, "dir-mode", "permission bits of directories, octal")
	fs.BoolVar(&f.allowOther, "allow-other", false, "let other users use the mount (the kernel checks the modes; non-root needs user_allow_other in /etc/fuse.conf)")
	fs.Var(&f.metadataTTL, "metadata-ttl", "how long listings and lookups are cached (`duration`), by ferry and the kernel; 0: not at all; \"forever\" for immutable datasets")
	fs.Var(&f.cacheMemory, "cache-memory", "memory tier of the block cache (the process stays within this plus the overhead printed at start)")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "persistent disk tier of the block cache, reused by the next mount; empty: none")
	fs.Var(&f.cacheSize, "cache-size", "bound of the disk tier")
	fs.Var(&f.blockSize, "block-size", "cache block `size`: the unit of GETs and of the caches")
	fs.Var(&f.readahead, "readahead", "largest readahead window of one sequential reader")
	fs.Var(&f.readaheadMemory, "readahead-memory", "bound on the bytes read ahead and not yet read, all files together")
	fs.IntVar(&f.concurrency, "concurrency", mount.DefaultConcurrency, "block GETs in flight at once, readahead included")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`host:port`/metrics")
	fs.BoolVar(&f.readWrite, "read-write", false, "allow writes: files are staged in --cache-dir (required) and uploaded on close and fsync; "+
		"an object changed in the store under a pending edit keeps its version, the edit goes to NAME.conflict-TIME")
	fs.DurationVar(&f.writeBack, "write-back", 0, "with --read-write, upload a closed file this long after its last close (0: before close returns); fsync uploads at once")
}

func (f *mountFlags) run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) != 2 {
		return usageErrorf("mount takes two arguments (URL MOUNTPOINT), got %d", len(args))
	}
	if f.concurrency <= 0 || f.uid < 0 || f.gid < 0 {
		return usageErrorf("--concurrency, --uid and --gid must not be negative")
	}
	if f.readWrite && f.cacheDir == "" {
		return usageErrorf("--read-write needs --cache-dir: files are staged there and a crashed mount's uploads are completed from there")
	}
	if f.writeBack < 0 || (f.writeBack > 0 && !f.readWrite) {
		return usageErrorf("--write-back takes a duration >= 0 and goes with --read-write")
	}
	if need := disktier.FileSize(int(f.blockSize)); f.cacheDir != "" && int64(f.cacheSize) < need {
		return usageErrorf("--cache-size %s cannot hold one block of --block-size %s: its file takes %d bytes",
			&f.cacheSize, &f.blockSize, need)
	}
	log, err := f.logger(out)
	if err != nil {
		return err
	}
	mnt, err := checkMountpoint(args[1])
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	loc, err := f.location(args[0])
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := mount.NewMetrics(reg)
	if err != nil {
		return err
	}
	b, _, err := openStore(ctx, loc, metrics)
	if err != nil {
		return err
	}
	if closer, ok := b.(io.Closer); ok {
		defer closer.Close()
	}
	if err := probeStore(ctx, b); err != nil {
		return fmt.Errorf("store %s: %w", loc, err)
	}
	opts := mount.Options{
		BlockSize: int64(f.blockSize), MetadataTTL: time.Duration(f.metadataTTL),
		UID: uint32(f.uid), GID: uint32(f.gid), FileMode: uint32(f.fileMode), DirMode: uint32(f.dirMode),
		AllowOther: f.allowOther, Readahead: int64(f.readahead), ReadaheadMemory: int64(f.readaheadMemory),
		Concurrency: f.concurrency, Logger: log, Debug: f.logLevel == "debug", Metrics: metrics,
	}
	overhead, err := opts.MemoryOverhead()
	if err != nil {
		return usageErrorf("%v", err)
	}
	cache, err := block.Open(block.Options{
		BlockSize: int64(f.blockSize), MemoryBytes: int64(f.cacheMemory),
		Dir: f.cacheDir, DiskBytes: int64(f.cacheSize), Metrics: metrics.Block,
	})
	if err != nil {
		if errors.Is(err, block.ErrLocked) {
			return fmt.Errorf("--cache-dir %s is in use by another ferry mount: %w", f.cacheDir, err)
		}
		return usageErrorf("block cache: %v", err)
	}
	defer cache.Close()
	opts.Cache = cache
	if f.readWrite {
		opts.Write = &mount.WriteOptions{Dir: filepath.Join(f.cacheDir, "write"), Target: loc.String(),
			MtimeFormat: mtimeFormat(loc.Provider), WriteBack: f.writeBack}
	}
	// The Go runtime's soft limit keeps the garbage collector from
	// letting the heap grow to twice the cache. Below it GOGC keeps its
	// default: a higher one (400 was tried) let the blocks of a streamed
	// file pile up as garbage until the limit, 790 MiB of RSS after
	// reading 1 GiB, each page of it faulted in anew, for no gain in
	// listing once listings skip the SDK (`ls -R` of 10,000 entries took
	// 0.18-0.25 s either way).
	bound := int64(f.cacheMemory) + overhead
	debug.SetMemoryLimit(bound - mount.RuntimeReserve)
	if f.metricsAddr != "" {
		stop, err := serveMetrics(f.metricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	srv, err := mount.Mount(ctx, b, mnt, opts)
	if err != nil {
		return err
	}
	log.Info("mounted", slog.String("store", loc.String()), slog.String("mountpoint", mnt), slog.Bool("read_write", f.readWrite),
		slog.String("metadata_ttl", f.metadataTTL.String()), slog.String("cache_memory", progress.Bytes(int64(f.cacheMemory))),
		slog.String("memory_bound", progress.Bytes(bound)), slog.String("cache_dir", f.cacheDir))
	return serve(ctx, srv, mnt, log, out)
}

// serve waits until the mount goes away or a signal asks to unmount. A
// busy mount is detached lazily, with a message saying so.
func serve(ctx context.Context, srv *mount.Server, mnt string, log *slog.Logger, out io.Writer) error {
	gone := make(chan struct{})
	go func() {
		srv.Wait()
		close(gone)
	}()
	select {
	case <-gone:
		log.Info("unmounted from outside", slog.String("mountpoint", mnt))
		return nil
	case <-ctx.Done():
	}
	err := srv.Unmount()
	if errors.Is(err, mount.ErrBusy) {
		fmt.Fprintf(out, "ferry mount: %s is busy (files open or a process inside it); unmounting lazily: "+
			"it is gone from the namespace now, and open files fail once ferry exits\n", mnt)
		if err := srv.Detach(); err != nil {
			return err
		}
		log.Info("detached", slog.String("mountpoint", mnt))
		return nil
	}
	if err != nil {
		return err
	}
	log.Info("unmounted", slog.String("mountpoint", mnt))
	return nil
}

// probeStore checks that the store answers, and that the bucket exists,
// with the first page of the root listing.
func probeStore(ctx context.Context, b backends.Backend) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	for _, err := range b.ListDir(ctx, "") {
		switch {
		case errors.Is(err, backends.ErrNoBucket):
			return fmt.Errorf("the bucket does not exist: %w", err)
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("not reachable within %s: %w", probeTimeout, err)
		case err != nil:
			return fmt.Errorf("not reachable: %w", err)
		}
		break
	}
	return nil
}

// serveMetrics serves reg on addr until stop is called.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageErrorf("--metrics-addr: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", slog.String("cause", err.Error()))
		}
	}()
	log.Info("serving metrics", slog.String("url", "http://"+ln.Addr().String()+"/metrics"))
	return func() { _ = hs.Close() }, nil
}

// checkMountpoint returns the absolute path of p, or a one-line error if
// it is missing, not a directory, or already a mount point.
func checkMountpoint(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("mount point %s: %w", p, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("mount point %s does not exist (create the directory first)", abs)
	case errors.Is(err, syscall.ENOTCONN):
		return "", fmt.Errorf("mount point %s is a dead FUSE mount (transport endpoint is not connected); run: fusermount3 -u %s", abs, abs)
	case err != nil:
		return "", fmt.Errorf("mount point %s: %w", abs, err)
	case !fi.IsDir():
		return "", fmt.Errorf("mount point %s is not a directory", abs)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	fstype, mounted, err := mountedAt(abs)
	if err != nil {
		return "", err
	}
	if mounted {
		return "", fmt.Errorf("mount point %s is already mounted (%s); unmount it first or choose another directory", abs, fstype)
	}
	return abs, nil
}

// mountedAt reports whether dir is the mount point of a mount in this
// process's namespace, and its filesystem type.
func mountedAt(dir string) (fstype string, ok bool, err error) {
	fh, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, fmt.Errorf("checking the mount point: %w", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || unescapeMountinfo(fields[4]) != dir {
			continue
		}
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
			}
		}
		ok = true
	}
	return fstype, ok, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// modeFlag is a permission flag in octal.
type modeFlag uint32

func (m *modeFlag) String() string { return fmt.Sprintf("%#o", uint32(*m)) }

func (m *modeFlag) Set(v string) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n&^0o7777 != 0 {
		return fmt.Errorf("%q: want octal permission bits such as 0444", v)
	}
	*m = modeFlag(n)
	return nil
}

// ttlFlag is a duration that may also be "forever" (negative inside).
type ttlFlag time.Duration

func (t *ttlFlag) String() string {
	if *t < 0 {
		return "forever"
	}
	return time.Duration(*t).String()
}

func (t *ttlFlag) Set(v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "forever", "inf", "infinite", "-1":
		*t = -1
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("%q: want a duration such as 30s or 5m, 0, or forever", v)
	}
	*t = ttlFlag(d)
	return nil
}
