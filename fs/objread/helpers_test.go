package objread

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"hash/crc64"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/local"
)

// fast retries, so that tests that retry stay quick.
func fastRetry() Retry {
	return Retry{MaxAttempts: 5, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond}
}

func newStore(t testing.TB) *local.Backend {
	t.Helper()
	b, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(b[i:], w[:])
	}
	return b
}

func crc32IEEE(data []byte) []byte {
	return binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data))
}

// crc64NVME is the CRC-64/NVME of data as S3 sends it, computed with
// hash/crc64 alone.
func crc64NVME(data []byte) []byte {
	return binary.BigEndian.AppendUint64(nil, crc64.Checksum(data, crc64.MakeTable(0x9a6c9329ac4bc9b5)))
}

func sumsOf(data []byte) backends.Checksums {
	m := md5.Sum(data)
	c := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	return backends.Checksums{MD5: m[:], CRC32C: binary.BigEndian.AppendUint32(nil, c)}
}

// put stores data at key and returns the info to pin, with the checksums
// computed here (the test decides whether the store "has" them).
func put(t testing.TB, b backends.Backend, key string, data []byte) backends.ObjectInfo {
	t.Helper()
	info, err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != key || info.Size != int64(len(data)) || info.Version.IsZero() {
		t.Fatalf("Put returned %+v", info)
	}
	info.Checksums = sumsOf(data)
	return info
}

// errReset is a transient error as a dropped connection gives.
var errReset = errors.New("connection reset by peer")

// faulty wraps a real backend: it counts GetRange calls and in-flight
// bodies, records the ranges asked for, and on chosen calls (1-based) fails
// the call or cuts the body short with errReset.
type faulty struct {
	backends.Backend
	failOn map[int64]error // call -> error returned by GetRange
	cutOn  map[int64]int64 // call -> body bytes delivered before errReset
	always error           // when set, every call fails with it
	flipAt int64           // when > 0, the body byte at this object offset arrives flipped
	onCall func(call int64)

	calls, inFlight, maxInFlight atomic.Int64
	mu                           sync.Mutex
	ranges                       [][2]int64 // GUARDED_BY(mu)
}

func (f *faulty) GetRange(ctx context.Context, key string, off, length int64, opts backends.ReadOptions) (io.ReadCloser, backends.ObjectInfo, error) {
	n := f.calls.Add(1)
	f.mu.Lock()
	f.ranges = append(f.ranges, [2]int64{off, length})
	f.mu.Unlock()
	if f.onCall != nil {
		f.onCall(n)
	}
	if f.always != nil {
		return nil, backends.ObjectInfo{}, f.always
	}
	if err := f.failOn[n]; err != nil {
		return nil, backends.ObjectInfo{}, err
	}
	rc, info, err := f.Backend.GetRange(ctx, key, off, length, opts)
	if err != nil {
		return nil, info, err
	}
	cur := f.inFlight.Add(1)
	for {
		m := f.maxInFlight.Load()
		if cur <= m || f.maxInFlight.CompareAndSwap(m, cur) {
			break
		}
	}
	body := &countedBody{ReadCloser: rc, f: f, left: -1, pos: off}
	if k, ok := f.cutOn[n]; ok {
		body.left = k
	}
	return body, info, nil
}

func (f *faulty) rangesSeen() [][2]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][2]int64(nil), f.ranges...)
}

type countedBody struct {
	io.ReadCloser
	f      *faulty
	left   int64 // bytes before the cut; -1: no cut
	pos    int64 // object offset of the next byte
	closed bool
}

func (b *countedBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, errReset
	}
	if b.left > 0 && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	if at := b.f.flipAt - b.pos; b.f.flipAt > 0 && at >= 0 && at < int64(n) {
		p[at] ^= 0x10
	}
	b.pos += int64(n)
	if b.left > 0 {
		b.left -= int64(n)
	}
	return n, err
}

func (b *countedBody) Close() error {
	if !b.closed {
		b.closed = true
		b.f.inFlight.Add(-1)
	}
	return b.ReadCloser.Close()
}

// funcHandler is a slog.Handler that calls fn for every record.
type funcHandler struct{ fn func(slog.Record) }

func (h funcHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h funcHandler) Handle(_ context.Context, r slog.Record) error {
	h.fn(r)
	return nil
}
func (h funcHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h funcHandler) WithGroup(string) slog.Handler      { return h }

// funcLogger logs nowhere but calls fn for every line.
func funcLogger(fn func()) *slog.Logger {
	return slog.New(funcHandler{func(slog.Record) { fn() }})
}
