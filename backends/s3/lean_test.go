package s3

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"testing"

	"github.com/ferryio/ferry/backends"
)

// The lean path applies to S3-compatible endpoints addressed path-style,
// and only there.
func TestLeanApplies(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want string // base URL, "" for no lean path
	}{
		{Options{Bucket: "b", Endpoint: "http://127.0.0.1:9000"}, "http://127.0.0.1:9000/b/"},
		{Options{Bucket: "b", Endpoint: "https://s3.example.com/"}, "https://s3.example.com/b/"},
		{Options{Bucket: "b"}, ""},
		{Options{Bucket: "b", Endpoint: "http://127.0.0.1:9000", VirtualHost: true}, ""},
		{Options{Bucket: "b", Endpoint: "http://127.0.0.1:9000/base"}, ""},
		{Options{Bucket: "b", Endpoint: "http://u:p@127.0.0.1:9000"}, ""},
		{Options{Bucket: "b", Endpoint: "127.0.0.1:9000"}, ""},
	} {
		c.opts.AccessKey, c.opts.SecretKey = "k", "s"
		b, err := New(t.Context(), c.opts)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if b.lean != nil {
			got = b.lean.base
		}
		if got != c.want {
			t.Errorf("%+v: lean base %q, want %q", c.opts, got, c.want)
		}
	}
}

// Lean GETs and PUTs give what the SDK gives for the same calls, on
// MinIO: the same bytes, the same ObjectInfo (weird keys, user metadata,
// content type, version ids, ranges, pins), and the same errors, which
// come from the SDK's own second try. Successful calls are answered by the
// lean path.
func TestLeanMatchesSDK(t *testing.T) {
	bucket := newBucket(t, true)
	lean, sdk := open(t, bucket), open(t, bucket)
	sdk.lean = nil
	if lean.lean == nil {
		t.Fatal("no lean path against MinIO")
	}
	names := []string{"a b", "a+b", "a%b", "a#b?c", "a&b=c", "a\x01ctl", "dir/x", "aé", "a日本/x", "~t.-_", "sp ace/  two"}
	for _, k := range names {
		data := []byte("content of " + k)
		opts := backends.PutOptions{
			Checksums:   backends.Checksums{CRC32C: crc32c(data), MD5: md5sum(data)},
			ContentType: "text/plain; charset=utf-8",
			Metadata:    map[string]string{"mtime": "1700000000.123456789", "Mode": "0100644"},
		}
		served := lean.lean.served.Load()
		lp, err := lean.Put(t.Context(), k, bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			t.Fatalf("lean Put %q: %v", k, err)
		}
		if lean.lean.served.Load() != served+1 {
			t.Errorf("Put %q was not made by the lean path", k)
		}
		sp, err := sdk.Put(t.Context(), k, bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			t.Fatalf("SDK Put %q: %v", k, err)
		}
		if lp.Version.ID == "" || lp.Version.ID == sp.Version.ID || lp.ModTime.IsZero() ||
			!sameInfo(withoutVersionID(lp), withoutVersionID(sp), false) {
			t.Errorf("Put %q: lean %+v\nSDK %+v", k, lp, sp)
		}
		for _, r := range []struct{ off, n int64 }{{0, -1}, {3, 4}, {5, -1}, {0, int64(len(data))}} {
			for _, ro := range []backends.ReadOptions{{}, {IfVersion: sp.Version}, {IfVersion: backends.Version{ID: lp.Version.ID}, Exact: true}} {
				served := lean.lean.served.Load()
				lgot, li, lerr := read(t, lean, k, r.off, r.n, ro)
				sgot, si, serr := read(t, sdk, k, r.off, r.n, ro)
				if lerr != nil || serr != nil || !bytes.Equal(lgot, sgot) || !sameInfo(li, si, true) {
					t.Errorf("GetRange(%q, %d, %d, %+v): lean %q %+v %v\nSDK %q %+v %v", k, r.off, r.n, ro, lgot, li, lerr, sgot, si, serr)
				}
				if lean.lean.served.Load() != served+1 {
					t.Errorf("GetRange(%q, %d, %d, %+v) was not made by the lean path", k, r.off, r.n, ro)
				}
			}
		}
	}

	// Failures: the SDK's errors, whichever path asked first.
	stale := put(t, lean, "k", []byte("one")).Version
	put(t, lean, "k", []byte("two"))
	data := []byte("checked")
	putWith := func(b *Backend, sums backends.Checksums) error {
		_, err := b.Put(t.Context(), "bad", bytes.NewReader(data), int64(len(data)), backends.PutOptions{Checksums: sums})
		return err
	}
	for _, c := range []struct {
		name string
		want error
		call func(*Backend) error
	}{
		{"missing", backends.ErrNotExist, func(b *Backend) error {
			_, _, err := read(t, b, "nope", 0, -1, backends.ReadOptions{})
			return err
		}},
		{"stale", backends.ErrPrecondition, func(b *Backend) error {
			_, _, err := read(t, b, "k", 0, -1, backends.ReadOptions{IfVersion: stale})
			return err
		}},
		{"range", backends.ErrInvalidRange, func(b *Backend) error {
			_, _, err := read(t, b, "k", 10, 2, backends.ReadOptions{})
			return err
		}},
		{"bad md5", backends.ErrChecksum, func(b *Backend) error {
			return putWith(b, backends.Checksums{CRC32C: crc32c(data), MD5: md5sum([]byte("other"))})
		}},
		{"bad crc", backends.ErrChecksum, func(b *Backend) error {
			return putWith(b, backends.Checksums{CRC32C: crc32c([]byte("other"))})
		}},
	} {
		served := lean.lean.served.Load()
		lerr, serr := c.call(lean), c.call(sdk)
		if !errors.Is(lerr, c.want) || !errors.Is(serr, c.want) || withoutIDs(lerr) != withoutIDs(serr) {
			t.Errorf("%s: lean %v\nSDK %v\nwant the same error, %v", c.name, lerr, serr, c.want)
		}
		if lean.lean.served.Load() != served {
			t.Errorf("%s: the lean path answered a failing call", c.name)
		}
	}
}

// withoutIDs is an error's text without the request ids, which differ from
// one request to the next.
func withoutIDs(err error) string {
	return regexp.MustCompile(`(RequestID|HostID): [^,]*,`).ReplaceAllString(fmt.Sprint(err), "")
}

// sameInfo compares what a GET or PUT reports, with ModTime when
// withTime (a PUT's is the response's Date, which differs by request).
func sameInfo(a, b backends.ObjectInfo, withTime bool) bool {
	return a.Key == b.Key && a.Size == b.Size && a.Version == b.Version && a.ContentType == b.ContentType &&
		maps.Equal(a.Metadata, b.Metadata) && reflect.DeepEqual(a.Checksums, b.Checksums) &&
		(!withTime || a.ModTime.Equal(b.ModTime))
}

func withoutVersionID(oi backends.ObjectInfo) backends.ObjectInfo {
	oi.Version.ID = ""
	return oi
}
