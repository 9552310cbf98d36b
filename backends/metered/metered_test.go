package metered_test

import (
	"bytes"
	"context"
	"io"
	"sync/atomic"
	"testing"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/local"
	"github.com/ferryio/ferry/backends/metered"
)

type observer struct{ requests, read, written atomic.Int64 }

func (o *observer) Request(string)       { o.requests.Add(1) }
func (o *observer) BytesRead(n int64)    { o.read.Add(n) }
func (o *observer) BytesWritten(n int64) { o.written.Add(n) }

func TestCountsByKind(t *testing.T) {
	ctx := context.Background()
	lb, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var obs observer
	b, counts := metered.New(lb, &obs)
	if _, ok := b.(backends.Multipart); !ok {
		t.Fatal("metered wrapper lost the Multipart capability")
	}
	for _, k := range []string{"a/1", "a/2"} {
		if _, err := b.Put(ctx, k, bytes.NewReader([]byte("hello")), 5, backends.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seq := b.List(ctx, "a/")
	if n := counts.Requests(metered.List); n != 0 {
		t.Fatalf("LIST counted before the listing ran: %d", n)
	}
	for _, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Stat(ctx, "a/1"); err != nil {
		t.Fatal(err)
	}
	rc, _, err := b.GetRange(ctx, "a/2", 1, -1, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if err := b.Delete(ctx, "a/1"); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{metered.Put: 2, metered.List: 1, metered.Head: 1, metered.Get: 1, metered.Delete: 1}
	snap := counts.Snapshot()
	for k, n := range want {
		if snap[k] != n {
			t.Errorf("%s = %d, want %d (all: %s)", k, snap[k], n, counts)
		}
	}
	if len(snap) != len(want) {
		t.Errorf("unexpected kinds: %s", counts)
	}
	if string(got) != "ello" || counts.BytesRead() != 4 || counts.BytesWritten() != 10 {
		t.Errorf("bytes: got %q, read %d, written %d", got, counts.BytesRead(), counts.BytesWritten())
	}
	if obs.requests.Load() != 6 || obs.read.Load() != 4 || obs.written.Load() != 10 {
		t.Errorf("observer saw requests=%d read=%d written=%d", obs.requests.Load(), obs.read.Load(), obs.written.Load())
	}
	if s := counts.String(); s != "DELETE=1 GET=1 HEAD=1 LIST=1 PUT=2" {
		t.Errorf("String() = %q", s)
	}
}
