package meta

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkDoHit: a cached lookup through Do (the FUSE lookup hot path).
func BenchmarkDoHit(b *testing.B) {
	c := New[int](time.Minute, 100000, nil)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "datasets/train/part-" + strconv.Itoa(i)
		c.Put(keys[i], i)
	}
	load := func(context.Context) (int, error) { b.Fatal("load on a hit"); return 0, nil }
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := c.Do(context.Background(), keys[i%len(keys)], load, nil); err != nil {
			b.Fatal(err)
		}
	}
}
