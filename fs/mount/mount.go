package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/cache/block"
)

// Defaults for Options.
const (
	DefaultReadahead   = 64 << 20
	DefaultConcurrency = 32
	DefaultFileMode    = 0o444
	DefaultDirMode     = 0o555
	// DefaultKernelReadahead is the kernel's readahead for the mount
	// (read_ahead_kb of its backing device), raised from the kernel's
	// 128 KiB so that sequential readers get large reads.
	DefaultKernelReadahead = 4 << 20
)

// Sizes of the kernel interface, part of the memory bound.
const (
	// maxRead is the largest READ the kernel sends (max_read, max_pages).
	maxRead = 1 << 20
	// fuseInflight bounds the bytes of request buffers go-fuse has out at
	// once (MaxInflightRequestBytes); replies in flight reference at most
	// as many bytes of blocks again.
	fuseInflight = 32 << 20
	// maxBackground is the kernel's bound on asynchronous requests
	// (readahead) in flight.
	maxBackground = 64
	// BaseOverhead is the memory of a mount process beyond its buffers:
	// the pages of the ferry binary and the runtime outside the Go heap
	// (RuntimeReserve), and the store's SDK client, the metadata caches
	// of a moderate namespace (see maxListings and maxLookups) and the
	// allocator's slack.
	BaseOverhead = 96 << 20
	// RuntimeReserve is the part of BaseOverhead outside the Go runtime's
	// accounting (mostly the binary's mapped pages, about 30 MiB): set
	// the Go memory limit to the bound minus this, so that the garbage
	// collector keeps the whole process within the bound.
	RuntimeReserve = 48 << 20
)

// ErrBusy is matched by the error of Unmount when files on the mount are
// still open (or a process has its working directory there).
var ErrBusy = errors.New("mount point is busy")

// Options configure Mount.
type Options struct {
	// Cache is the block cache reads go through; required. BlockSize must
	// be the BlockSize it was opened with.
	Cache     *block.Cache
	BlockSize int64
	// MetadataTTL is how long listings and lookups (negative ones
	// included) are cached, by the mount and by the kernel: < 0 forever
	// (immutable datasets), 0 not at all.
	MetadataTTL time.Duration
	// UID and GID own every file; FileMode and DirMode are the permission
	// bits of files and directories (0: DefaultFileMode, DefaultDirMode).
	UID, GID          uint32
	FileMode, DirMode uint32
	// AllowOther lets other users than the mounting one use the mount
	// (the kernel then checks FileMode and DirMode).
	AllowOther bool
	// Readahead is the largest readahead window of one open file, in
	// bytes; 0 means DefaultReadahead, < 0 disables readahead.
	Readahead int64
	// ReadaheadMemory bounds the bytes of blocks read ahead and not yet
	// read, over all open files; 0 means 4 * Readahead.
	ReadaheadMemory int64
	// Concurrency bounds the block GETs in flight, readahead included;
	// 0 means DefaultConcurrency.
	Concurrency int
	// KernelReadahead sets the kernel's readahead for the mount, in bytes
	// (needs root; left as it is otherwise); 0 means
	// DefaultKernelReadahead, < 0 leaves the kernel's default.
	KernelReadahead int64
	// Logger receives the mount's log lines; nil discards them.
	Logger *slog.Logger
	// Debug traces every FUSE request and reply to Logger at debug level.
	Debug bool
	// Metrics, if set, receives the mount's counters. Give the same
	// Metrics to the backend's metered wrapper (it is its Observer) and
	// its Block field to the block cache.
	Metrics *Metrics
	// Now is the clock of the metadata caches; nil means time.Now.
	Now func() time.Time
	// Write, when set, makes the mount read-write (see the package doc,
	// "Read-write"); FileMode and DirMode then get the owner's write bit.
	Write *WriteOptions
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.BlockSize <= 0:
		return o, fmt.Errorf("mount: block size %d, want > 0", o.BlockSize)
	case o.FileMode&^0o7777 != 0 || o.DirMode&^0o7777 != 0:
		return o, fmt.Errorf("mount: file mode %o or directory mode %o is not a permission", o.FileMode, o.DirMode)
	case o.Concurrency < 0 || o.ReadaheadMemory < 0:
		return o, errors.New("mount: negative concurrency or readahead memory")
	}
	if o.FileMode == 0 {
		o.FileMode = DefaultFileMode
	}
	if o.DirMode == 0 {
		o.DirMode = DefaultDirMode
	}
	switch {
	case o.Readahead == 0:
		o.Readahead = DefaultReadahead
	case o.Readahead < 0:
		o.Readahead = 0
	}
	if o.ReadaheadMemory == 0 {
		o.ReadaheadMemory = 4 * o.Readahead
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.KernelReadahead == 0 {
		o.KernelReadahead = DefaultKernelReadahead
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Write != nil {
		o.FileMode |= 0o200
		o.DirMode |= 0o200
	}
	return o, nil
}

// MemoryOverhead is what a mount with these options may use beyond the
// block cache's memory tier (block.Options.MemoryBytes):
//
//	ReadaheadMemory                 blocks read ahead, not yet read
//	+ Concurrency * BlockSize       blocks being fetched
//	+ max(64 MiB, 8 * BlockSize)    the last blocks fetched, held until
//	                                the memory tier admits them
//	+ block.DiskWritesBehind        blocks being written to the disk
//	  * BlockSize                   tier in the background
//	+ 2 * 32 MiB                    FUSE request buffers, and blocks
//	                                referenced by replies in flight
//	+ BaseOverhead (96 MiB)         runtime, SDK, metadata caches
//
// The memory tier's own bookkeeping is below 0.1% of its bound (see
// package memtier). The bound holds under any number of parallel readers:
// each term is bounded by a semaphore, not by the number of handles.
func (o Options) MemoryOverhead() (int64, error) {
	o, err := o.withDefaults()
	if err != nil {
		return 0, err
	}
	held := max(recentBytes, minRecent*o.BlockSize)
	behind := block.DiskWritesBehind * o.BlockSize
	return o.ReadaheadMemory + int64(o.Concurrency)*o.BlockSize + held + behind + 2*fuseInflight + BaseOverhead, nil
}

// Server is a mounted store. Wait for it, Unmount it, or Detach it.
type Server struct {
	srv        *fuse.Server
	mountpoint string
	log        *slog.Logger
	stop       context.CancelFunc
	w          *writer // nil when read-only
}

// Mount mounts b (normally a prefix of a bucket, its keys relative to the
// prefix) at mountpoint, an existing directory, and serves it in the
// background until it is unmounted: read-only, or with opts.Write
// read-write, after completing what the journal of an earlier mount left
// pending (ctx bounds that).
func Mount(ctx context.Context, b backends.Backend, mountpoint string, opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Cache == nil {
		return nil, errors.New("mount: no block cache")
	}
	closing, stop := context.WithCancel(context.Background())
	fsys := newFilesystem(closing, b, opts)
	flags := uintptr(syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_RDONLY)
	if opts.Write != nil {
		flags &^= syscall.MS_RDONLY
		if fsys.w, err = startWriter(ctx, fsys, *opts.Write); err != nil {
			stop()
			return nil, err
		}
	}
	root := &dirNode{fsys: fsys}
	ttl := fsys.kernelTTL()
	fo := &fs.Options{
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NullPermissions: true,
		UID:             opts.UID,
		GID:             opts.GID,
		Logger:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		MountOptions: fuse.MountOptions{
			FsName:                  "ferry",
			Name:                    "ferry",
			AllowOther:              opts.AllowOther,
			Options:                 []string{"default_permissions"},
			DirectMount:             true,
			DirectMountFlags:        flags,
			MaxWrite:                maxRead,
			MaxBackground:           maxBackground,
			MaxInflightRequestBytes: fuseInflight,
			DisableXAttrs:           true,
			// A 1 MiB reply and its header do not fit the 1 MiB pipe
			// splice would use; write replies directly.
			DisableSplice: true,
			Debug:         opts.Debug,
			Logger:        slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
		},
	}
	if ttl > 0 {
		fo.NegativeTimeout = &ttl
	}
	srv, err := fs.Mount(mountpoint, root, fo)
	if err != nil {
		stop()
		if fsys.w != nil {
			_ = fsys.w.close(ctx)
		}
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	s := &Server{srv: srv, mountpoint: mountpoint, log: opts.Logger, stop: stop, w: fsys.w}
	if opts.KernelReadahead > 0 {
		if err := setKernelReadahead(mountpoint, opts.KernelReadahead); err != nil {
			s.log.Debug("mount: kernel readahead left at its default", slog.String("cause", err.Error()))
		}
	}
	return s, nil
}

// Wait returns when the mount is gone: unmounted by Unmount, by
// fusermount -u or umount, or after Detach once its last file is closed.
// Readahead stops then; a read-write mount uploads what write-back still
// held, and closes its journal.
func (s *Server) Wait() {
	s.srv.Wait()
	s.stop()
	if s.w != nil {
		if err := s.w.close(context.Background()); err != nil {
			s.log.Error("mount: uploads left pending in the journal for the next mount", slog.String("cause", redact(err.Error())))
		}
	}
}

// Unmount unmounts, and returns once the mount is gone. If files are open
// on it, it returns an error matching ErrBusy and the mount stays.
func (s *Server) Unmount() error {
	err := syscall.Unmount(s.mountpoint, 0)
	switch {
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("unmount %s: %w: %w", s.mountpoint, ErrBusy, err)
	case err != nil:
		// Not root: go-fuse goes through fusermount.
		if err := s.srv.Unmount(); err != nil {
			return fmt.Errorf("unmount %s: %w", s.mountpoint, err)
		}
	}
	s.Wait()
	return nil
}

// Detach unmounts lazily: the mount point is free at once, and the files
// still open keep working until they are closed (or this process exits).
func (s *Server) Detach() error {
	err := syscall.Unmount(s.mountpoint, syscall.MNT_DETACH)
	if err == nil {
		return nil
	}
	out, ferr := exec.Command("fusermount3", "-u", "-z", s.mountpoint).CombinedOutput()
	if ferr != nil {
		return fmt.Errorf("lazy unmount %s: %w; fusermount3: %v: %s", s.mountpoint, err, ferr, out)
	}
	return nil
}

// setKernelReadahead sets read_ahead_kb of the mount's backing device
// (the kernel caps FUSE's own max_readahead at its default).
func setKernelReadahead(mountpoint string, bytes int64) error {
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return err
	}
	dev := strconv.FormatUint(uint64(unix.Major(st.Dev)), 10) + ":" + strconv.FormatUint(uint64(unix.Minor(st.Dev)), 10)
	p := filepath.Join("/sys/class/bdi", dev, "read_ahead_kb")
	return os.WriteFile(p, []byte(strconv.FormatInt(bytes>>10, 10)), 0)
}
