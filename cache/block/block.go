// Package block is the block cache the mount reads through: object contents
// in fixed-size blocks, keyed by (object, version, index), held in a memory
// tier (package memtier) in front of a persistent disk tier (package
// disktier), with concurrent misses of one block deduplicated into a single
// fetch.
package block

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/ferryio/ferry/cache/disktier"
	"github.com/ferryio/ferry/cache/internal/flight"
	"github.com/ferryio/ferry/cache/memtier"
)

// DefaultBlockSize is the block size when Options.BlockSize is 0.
const DefaultBlockSize = 4 << 20

// Sentinel errors, tested with errors.Is. Opening a disk tier whose
// directory is in use fails with disktier.ErrLocked, re-exported here.
var (
	// ErrClosed: the Cache has been closed.
	ErrClosed = errors.New("block cache: closed")
	// ErrBlockTooLarge: fetch returned more than BlockSize bytes.
	ErrBlockTooLarge = errors.New("block cache: fetched block larger than the block size")
	// ErrBadKey: the key's Index is negative.
	ErrBadKey = errors.New("block cache: negative block index")
	// ErrLocked: the disk tier's directory is in use by another Cache.
	ErrLocked = disktier.ErrLocked
)

// Key names one block: block Index (counted from 0, each BlockSize bytes
// long but the last) of the object Object as of version Version. Version is
// opaque to the cache (an ETag, a generation number...): a new version is a
// new set of blocks, so blocks are never stale, only unused.
type Key struct {
	Object  string
	Version string
	Index   int64
}

// memKey encodes k as a string unambiguously: the object is
// length-prefixed, and the index follows the last '/', which no index holds.
func (k Key) memKey() string {
	var b strings.Builder
	b.Grow(len(k.Object) + len(k.Version) + 2*20 + 2)
	var num [20]byte
	b.Write(strconv.AppendInt(num[:0], int64(len(k.Object)), 10))
	b.WriteByte(':')
	b.WriteString(k.Object)
	b.WriteString(k.Version)
	b.WriteByte('/')
	b.Write(strconv.AppendInt(num[:0], k.Index, 10))
	return b.String()
}

// Options configure Open.
type Options struct {
	// BlockSize is the size of every block of an object but its last; a
	// fetch may return fewer bytes, never more. 0 means DefaultBlockSize.
	BlockSize int64
	// MemoryBytes bounds the memory tier (see package memtier for the
	// bookkeeping on top of it); 0 disables the memory tier.
	MemoryBytes int64
	// Dir is the disk tier's directory; "" disables the disk tier. Blocks
	// found there are used only if they were stored with the same BlockSize.
	Dir string
	// DiskBytes bounds the disk tier's files (headers included; filesystem
	// block rounding and directories are not counted). Required with Dir,
	// and at least one block's file (disktier.FileSize(BlockSize)).
	DiskBytes int64
	// Metrics, if set, receives the cache's counters.
	Metrics *Metrics
}

// Cache is a two-tier block cache. Its methods are safe for concurrent use.
type Cache struct {
	blockSize int64
	mem       *memtier.Tier  // nil when disabled
	disk      *disktier.Tier // nil when disabled
	metrics   *Metrics       // may be nil
	flights   flight.Group[[]byte]
	closing   context.Context // cancelled by Close, to stop fetches
	stop      context.CancelFunc
	// writes holds a unit for each block being written to the disk tier
	// in the background (at most DiskWritesBehind); taking them all waits
	// for those writes (Close, Flush).
	writes chan struct{}
	// beforeWrite, if set (tests), is called before each disk write.
	beforeWrite func()

	// mu is held shared by every Get and exclusively by Close, so the tiers
	// are never closed under a Get and no fetch starts once Close has begun.
	mu     sync.RWMutex
	closed bool // GUARDED_BY(mu)
}

// Open creates a Cache. With a disk tier, it takes Dir for this process
// (an error wrapping ErrLocked, naming Dir, if another Cache has it) and
// finds the blocks a previous Cache left there.
func Open(opts Options) (*Cache, error) {
	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	switch {
	case bs < 0:
		return nil, fmt.Errorf("block cache: negative BlockSize %d", bs)
	case opts.MemoryBytes < 0:
		return nil, fmt.Errorf("block cache: negative MemoryBytes %d", opts.MemoryBytes)
	case opts.Dir != "" && opts.DiskBytes < disktier.FileSize(int(bs)):
		return nil, fmt.Errorf("block cache: DiskBytes %d cannot hold one %d-byte block (%d bytes on disk)",
			opts.DiskBytes, bs, disktier.FileSize(int(bs)))
	}
	c := &Cache{blockSize: bs, metrics: opts.Metrics, writes: make(chan struct{}, DiskWritesBehind)}
	m := opts.Metrics
	if opts.MemoryBytes > 0 {
		mem, err := memtier.New(opts.MemoryBytes, bs, func(int64) { m.evicted(false) })
		if err != nil {
			return nil, err
		}
		c.mem = mem
	}
	if opts.Dir != "" {
		disk, err := disktier.Open(disktier.Options{
			Dir:      opts.Dir,
			MaxBytes: opts.DiskBytes,
			OnEvict:  func(int64) { m.evicted(true) },
		})
		if err != nil {
			if c.mem != nil {
				c.mem.Close()
			}
			return nil, err
		}
		c.disk = disk
		m.setBytes(true, disk.Used())
	}
	c.closing, c.stop = context.WithCancel(context.Background())
	return c, nil
}

// Get returns block k: from memory; else from disk, promoting it to
// memory; else by calling fetch, storing its result in both tiers (on
// disk in the background: see DiskWritesBehind). Callers
// missing the same block at the same time share one fetch (and one disk
// read) and its outcome; a failed fetch is returned to each of them and not
// cached, so the next Get fetches again.
//
// fetch is called with a context carrying ctx's values, not cancelled by
// ctx: if ctx is done first, Get returns ctx.Err() at once and the fetch goes
// on for the other callers and for the cache. The fetch's context is
// cancelled when all its callers have given up, or on Close. fetch must
// return at most BlockSize bytes (else ErrBlockTooLarge), hands the
// returned slice to the cache (it must not keep or modify it), and must not
// call the Cache itself (Close would wait for it while it waits for Close).
//
// The returned slice is shared by all callers and the memory tier: callers
// must not modify it. It stays valid for as long as it is held, whatever is
// evicted. A disk tier failure (torn block, I/O error) is counted in Metrics
// and served as a miss. After Close, Get returns ErrClosed.
func (c *Cache) Get(ctx context.Context, k Key, fetch func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	return c.get(ctx, k, false, fetch)
}

// GetStreamed is Get for a block of a sequential stream, which the reader
// consumes whole and the kernel's page cache then holds: a block it
// fetches or finds on disk is kept on disk only, if there is a disk tier,
// and not in memory, where it would only double the page cache and fill
// the memory tier with blocks read once. A block that cannot be written to
// disk is kept in memory instead. Callers of Get and GetStreamed missing
// the same block share one fetch, which keeps the block as its first
// caller asked.
func (c *Cache) GetStreamed(ctx context.Context, k Key, fetch func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	return c.get(ctx, k, true, fetch)
}

func (c *Cache) get(ctx context.Context, k Key, streamed bool, fetch func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	if k.Index < 0 {
		return nil, fmt.Errorf("%w: %d", ErrBadKey, k.Index)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, ErrClosed
	}
	mk := k.memKey()
	if c.mem != nil {
		if b, ok := c.mem.Get(mk); ok {
			c.metrics.hit(false, len(b))
			return b, nil
		}
		c.metrics.miss(false)
	}
	return c.flights.Do(ctx, mk, func(ctx context.Context) ([]byte, error) {
		return c.load(ctx, k, mk, streamed, fetch)
	})
}

// Cached reports whether a Get of k would be served without a fetch: the
// block is in memory or on disk (its index, no read). It is a hint, for
// choosing between fetching blocks together and reading them one by one:
// the block may be evicted before the Get.
func (c *Cache) Cached(k Key) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed || k.Index < 0 {
		return false
	}
	if c.mem != nil {
		if _, ok := c.mem.Get(k.memKey()); ok {
			return true
		}
	}
	return c.disk != nil && c.disk.Has(c.diskID(k))
}

// load serves one miss of the memory tier, for all the callers sharing it.
func (c *Cache) load(ctx context.Context, k Key, mk string, streamed bool, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.closing, cancel)()

	var id disktier.ID
	if c.disk != nil {
		id = c.diskID(k)
		b, err := c.disk.Get(id)
		switch {
		case err == nil:
			c.metrics.hit(true, len(b))
			if !streamed {
				c.remember(mk, b)
			}
			return b, nil
		case errors.Is(err, disktier.ErrCorrupt):
			c.metrics.diskProblem(true)
			c.metrics.setBytes(true, c.disk.Used())
		case !errors.Is(err, disktier.ErrNotFound):
			c.metrics.diskProblem(false)
		}
		c.metrics.miss(true)
	}
	b, err := fetch(ctx)
	c.metrics.fetched(len(b), err)
	if err != nil {
		return nil, err
	}
	if err := c.checkSize(k, b); err != nil {
		return nil, err
	}
	c.store(id, mk, b, streamed)
	return b, nil
}

// Add stores b as block k in both tiers, as a Get fetching it would, for
// a block fetched otherwise (one GET for several blocks). It returns once
// the block is offered to memory and on its way to disk (see
// DiskWritesBehind; Flush waits for it), whatever happens to the caller
// that fetched it. b is handed to the cache: nobody may modify it
// afterwards. Errors: ErrBadKey, ErrBlockTooLarge, ErrClosed; a disk tier
// failure is only counted, as in Get.
func (c *Cache) Add(k Key, b []byte) error {
	return c.add(k, b, false)
}

// AddStreamed is Add for a block of a sequential stream: as GetStreamed,
// it is kept on disk only, if there is a disk tier, and not in memory.
func (c *Cache) AddStreamed(k Key, b []byte) error {
	return c.add(k, b, true)
}

func (c *Cache) add(k Key, b []byte, streamed bool) error {
	if k.Index < 0 {
		return fmt.Errorf("%w: %d", ErrBadKey, k.Index)
	}
	if err := c.checkSize(k, b); err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	c.metrics.fetched(len(b), nil)
	var id disktier.ID
	if c.disk != nil {
		id = c.diskID(k)
	}
	c.store(id, k.memKey(), b, streamed)
	return nil
}

func (c *Cache) checkSize(k Key, b []byte) error {
	if int64(len(b)) > c.blockSize {
		return fmt.Errorf("%w: %d bytes for block %d of %q, block size %d",
			ErrBlockTooLarge, len(b), k.Index, k.Object, c.blockSize)
	}
	return nil
}

// DiskWritesBehind is how many blocks at most are being written to the
// disk tier in the background, each holding its block in memory until
// written; a block beyond them is written before the fetch that brought
// it returns.
const DiskWritesBehind = 4

// store offers b to the memory tier as mk, unless it is streamed, and
// writes it to the disk tier as id, if there is one: in the background
// when fewer than DiskWritesBehind writes are going on, so that the
// readers waiting for the block do not also wait for the disk.
func (c *Cache) store(id disktier.ID, mk string, b []byte, streamed bool) {
	if !streamed {
		c.remember(mk, b)
	}
	if c.disk == nil {
		return
	}
	select {
	case c.writes <- struct{}{}:
		go func() {
			defer func() { <-c.writes }()
			c.write(id, mk, b, streamed)
		}()
	default:
		c.write(id, mk, b, streamed)
	}
}

// write puts b to the disk tier as id. A block that cannot be written is
// still served, and kept in memory if it was not; the failure is only
// counted.
func (c *Cache) write(id disktier.ID, mk string, b []byte, streamed bool) {
	if c.beforeWrite != nil {
		c.beforeWrite()
	}
	err := c.disk.Put(id, b)
	c.metrics.setBytes(true, c.disk.Used())
	if err != nil {
		c.metrics.diskProblem(false)
		if streamed {
			c.remember(mk, b)
		}
	}
}

// Flush returns once every block stored before it is on disk (or failed
// to be written). Meanwhile, blocks stored are written before their fetch
// returns.
func (c *Cache) Flush() {
	c.drainWrites()
	for range cap(c.writes) {
		<-c.writes
	}
}

// drainWrites takes every unit of writes, which returns once the
// background writes have ended; the units stay taken.
func (c *Cache) drainWrites() {
	for range cap(c.writes) {
		c.writes <- struct{}{}
	}
}

// diskID names k on disk. The block size is part of the name: the same
// index means other bytes under another block size, so a Dir reopened with a
// new BlockSize finds none of the old blocks (they age out by LRU).
// "size:version" is unambiguous, as the size holds no ':'.
func (c *Cache) diskID(k Key) disktier.ID {
	return disktier.NewID(k.Object, strconv.FormatInt(c.blockSize, 10)+":"+k.Version, k.Index)
}

// remember offers b to the memory tier, if there is one.
func (c *Cache) remember(mk string, b []byte) {
	if c.mem == nil {
		return
	}
	c.mem.Put(mk, b)
	c.metrics.setBytes(false, c.mem.Used())
}

// Close cancels fetches in progress, waits for them, for every Get to
// return (a fetch that ignores its context delays Close) and for the disk
// writes going on in the background, then releases the
// tiers: the memory tier is dropped, the disk tier's blocks stay for the
// next Open of Dir. Later calls return ErrClosed.
func (c *Cache) Close() error {
	c.stop()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closed = true
	c.mu.Unlock()
	c.flights.Wait()
	c.drainWrites()
	if c.mem != nil {
		c.mem.Close()
	}
	if c.disk != nil {
		return c.disk.Close()
	}
	return nil
}
