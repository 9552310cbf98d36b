package block

import (
	"context"
	"fmt"
	"testing"
)

func benchKeys(n int) []Key {
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = Key{Object: "datasets/imagenet/train/shard-00042.tar", Version: "etag-0123456789abcdef", Index: int64(i)}
	}
	return keys
}

// fill loads every key into c and waits for the memory tier to admit them.
func fill(b *testing.B, c *Cache, keys []Key, size int) {
	b.Helper()
	for _, k := range keys {
		if _, err := c.Get(context.Background(), k, func(context.Context) ([]byte, error) {
			return make([]byte, size), nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	if c.mem != nil {
		c.mem.Wait()
	}
}

var errMiss = fmt.Errorf("benchmark: unexpected fetch")

func failFetch(context.Context) ([]byte, error) { return nil, errMiss }

// BenchmarkMemoryHit: a Get served by the memory tier (the mount's hot path).
func BenchmarkMemoryHit(b *testing.B) {
	const bs = 4 << 20
	c, err := Open(Options{BlockSize: bs, MemoryBytes: 64 * bs})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	keys := benchKeys(16)
	fill(b, c, keys, bs)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := c.Get(context.Background(), keys[i%len(keys)], failFetch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryHitParallel: memory hits from all Ps at once.
func BenchmarkMemoryHitParallel(b *testing.B) {
	const bs = 4 << 20
	c, err := Open(Options{BlockSize: bs, MemoryBytes: 64 * bs})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	keys := benchKeys(16)
	fill(b, c, keys, bs)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if _, err := c.Get(context.Background(), keys[i%len(keys)], failFetch); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDiskHit: a Get served by the disk tier (memory tier disabled, so
// every Get reads and verifies the file; the OS page cache is warm).
func BenchmarkDiskHit(b *testing.B) {
	for _, bs := range []int{64 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("%dKiB", bs>>10), func(b *testing.B) {
			c, err := Open(Options{BlockSize: int64(bs), Dir: b.TempDir(), DiskBytes: int64(64 * (bs + 16))})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			keys := benchKeys(16)
			fill(b, c, keys, bs)
			b.SetBytes(int64(bs))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := c.Get(context.Background(), keys[i%len(keys)], failFetch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMissStore: a miss whose fetch returns at once, so the cost is
// the cache's own: disk write (temp file + rename) and memory admission.
func BenchmarkMissStore(b *testing.B) {
	const bs = 4 << 20
	c, err := Open(Options{BlockSize: bs, MemoryBytes: 16 * bs, Dir: b.TempDir(), DiskBytes: 16 * (bs + 16)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, bs)
	fetch := func(context.Context) ([]byte, error) { return data, nil }
	b.SetBytes(bs)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := Key{Object: "o", Version: "v", Index: int64(i)}
		if _, err := c.Get(context.Background(), k, fetch); err != nil {
			b.Fatal(err)
		}
	}
}
