package s3

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"hash/crc32"
	"hash/crc64"
	"io"
	"iter"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/backendtest"
	"github.com/ferryio/ferry/integration/testenv"
)

var srv *testenv.MinIO

func TestMain(m *testing.M) {
	testenv.Main(m, func(e *testenv.Env) (err error) {
		srv, err = e.MinIO()
		return err
	})
}

// newBucket creates a fresh bucket and returns its name.
func newBucket(t *testing.T, versioned bool) string {
	t.Helper()
	name := testenv.BucketName(t)
	if err := srv.CreateBucket(t.Context(), name, versioned); err != nil {
		t.Fatal(err)
	}
	return name
}

// open returns a driver for bucket on the test server; mods adjust the
// options.
func open(t *testing.T, bucket string, mods ...func(*Options)) *Backend {
	t.Helper()
	opts := Options{Bucket: bucket, Endpoint: srv.Endpoint, Region: srv.Region,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	for _, m := range mods {
		m(&opts)
	}
	b, err := New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func crc32c(p []byte) []byte {
	return binary.BigEndian.AppendUint32(nil, crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)))
}

func md5sum(p []byte) []byte { s := md5.Sum(p); return s[:] }

func put(t *testing.T, b *Backend, key string, data []byte) backends.ObjectInfo {
	t.Helper()
	oi, err := b.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return oi
}

func read(t *testing.T, b *Backend, key string, off, n int64, opts backends.ReadOptions) ([]byte, backends.ObjectInfo, error) {
	t.Helper()
	rc, oi, err := b.GetRange(t.Context(), key, off, n, opts)
	if err != nil {
		return nil, oi, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return data, oi, err
}

func TestPutStatGetRange(t *testing.T) {
	b := open(t, newBucket(t, false))
	data := []byte("0123456789abcdef")
	opts := backends.PutOptions{ContentType: "text/plain", Metadata: map[string]string{"mtime": "1700000000"}}
	pi, err := b.Put(t.Context(), "k", bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatal(err)
	}
	si, err := b.Stat(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if si.Size != 16 || si.ContentType != "text/plain" || si.Metadata["mtime"] != "1700000000" || si.ModTime.IsZero() {
		t.Errorf("stat = %+v", si)
	}
	if si.Version != pi.Version || si.Version.ETag == "" || si.Version.ID != "" {
		t.Errorf("stat version %+v, put version %+v", si.Version, pi.Version)
	}
	if !bytes.Equal(si.Checksums.CRC32C, crc32c(data)) || !bytes.Equal(si.Checksums.MD5, md5sum(data)) {
		t.Errorf("stat checksums %x/%x, want %x/%x", si.Checksums.CRC32C, si.Checksums.MD5, crc32c(data), md5sum(data))
	}
	if !bytes.Equal(pi.Checksums.CRC32C, crc32c(data)) || pi.ModTime.IsZero() {
		t.Errorf("put info %+v", pi)
	}
	for _, tc := range []struct {
		off, n int64
		want   string
		err    error
	}{
		{0, -1, string(data), nil},
		{2, 3, "234", nil},
		{10, -1, "abcdef", nil},
		{10, 100, "abcdef", nil},
		{15, 1, "f", nil},
		{16, -1, "", nil},
		{16, 5, "", nil},
		{0, 0, "", nil},
		{16, 0, "", nil},
		{17, -1, "", backends.ErrInvalidRange},
		{17, 0, "", backends.ErrInvalidRange},
		{100, 10, "", backends.ErrInvalidRange},
	} {
		got, gi, err := read(t, b, "k", tc.off, tc.n, backends.ReadOptions{})
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("GetRange(%d, %d) err = %v, want %v", tc.off, tc.n, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("GetRange(%d, %d) = %q, %v; want %q", tc.off, tc.n, got, err, tc.want)
			continue
		}
		if gi.Size != 16 || gi.Version != si.Version || gi.ContentType != "text/plain" || gi.Metadata["mtime"] != "1700000000" {
			t.Errorf("GetRange(%d, %d) info = %+v", tc.off, tc.n, gi)
		}
	}
}

func TestEmptyObject(t *testing.T) {
	b := open(t, newBucket(t, false))
	put(t, b, "empty", nil)
	for _, tc := range []struct {
		off, n int64
		err    error
	}{{0, -1, nil}, {0, 5, nil}, {0, 0, nil}, {1, -1, backends.ErrInvalidRange}, {1, 0, backends.ErrInvalidRange}} {
		got, gi, err := read(t, b, "empty", tc.off, tc.n, backends.ReadOptions{})
		if !errors.Is(err, tc.err) || (tc.err == nil && (len(got) != 0 || gi.Size != 0 || gi.Version.ETag == "")) {
			t.Errorf("GetRange(%d, %d) = %q, %+v, %v; want empty, %v", tc.off, tc.n, got, gi, err, tc.err)
		}
	}
}

func TestMissing(t *testing.T) {
	b := open(t, newBucket(t, false))
	if _, err := b.Stat(t.Context(), "nope"); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("Stat: %v", err)
	}
	for _, n := range []int64{-1, 0, 4} {
		if _, _, err := read(t, b, "nope", 0, n, backends.ReadOptions{}); !errors.Is(err, backends.ErrNotExist) {
			t.Errorf("GetRange(0, %d): %v", n, err)
		}
	}
	if err := b.Delete(t.Context(), "nope"); err != nil {
		t.Errorf("Delete: %v", err)
	}
	var be *backends.Error
	if _, err := b.Stat(t.Context(), "nope"); !errors.As(err, &be) || be.Op != "stat" || be.Key != "nope" || be.Err == nil {
		t.Errorf("Stat error %#v lacks op, key or cause", err)
	}

	nb := open(t, "ferry-no-such-bucket")
	if _, err := nb.Put(t.Context(), "k", bytes.NewReader(nil), 0, backends.PutOptions{}); !errors.Is(err, backends.ErrNoBucket) {
		t.Errorf("Put to missing bucket: %v", err)
	}
	for _, err := range nb.List(t.Context(), "") {
		if !errors.Is(err, backends.ErrNoBucket) {
			t.Errorf("List of missing bucket: %v", err)
		}
	}
}

func TestBadCredentials(t *testing.T) {
	b := open(t, newBucket(t, false), func(o *Options) { o.SecretKey = "wrong-secret" })
	if _, err := b.Stat(t.Context(), "k"); !errors.Is(err, backends.ErrPermission) {
		t.Errorf("Stat with a bad secret: %v", err)
	}
	if _, err := b.Put(t.Context(), "k", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrPermission) {
		t.Errorf("Put with a bad secret: %v", err)
	}
}

func TestPinnedRead(t *testing.T) {
	b := open(t, newBucket(t, false))
	v1 := put(t, b, "k", []byte("version one")).Version
	pinned := backends.ReadOptions{IfVersion: v1}
	if got, _, err := read(t, b, "k", 0, 7, pinned); err != nil || string(got) != "version" {
		t.Fatalf("pinned read of the current version = %q, %v", got, err)
	}
	put(t, b, "k", []byte("version two!"))
	for _, n := range []int64{-1, 4, 0} {
		if _, _, err := read(t, b, "k", 0, n, pinned); !errors.Is(err, backends.ErrPrecondition) {
			t.Errorf("pinned read (0, %d) after overwrite: %v", n, err)
		}
	}
	if err := b.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := read(t, b, "k", 0, -1, pinned); !errors.Is(err, backends.ErrPrecondition) {
		t.Errorf("pinned read after delete: %v", err)
	}
}

func TestVersionedBucket(t *testing.T) {
	b := open(t, newBucket(t, true))
	p1 := put(t, b, "k", []byte("first"))
	s1, err := b.Stat(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if p1.Version.ID == "" || s1.Version != p1.Version {
		t.Fatalf("put version %+v, stat version %+v: want equal with an ID", p1.Version, s1.Version)
	}
	if got, gi, err := read(t, b, "k", 1, 3, backends.ReadOptions{IfVersion: s1.Version}); err != nil || string(got) != "irs" || gi.Version != s1.Version {
		t.Fatalf("pinned read = %q, %+v, %v", got, gi.Version, err)
	}
	p2 := put(t, b, "k", []byte("second"))
	if p2.Version.ID == p1.Version.ID {
		t.Fatalf("overwrite kept version id %q", p2.Version.ID)
	}
	if _, _, err := read(t, b, "k", 0, -1, backends.ReadOptions{IfVersion: s1.Version}); !errors.Is(err, backends.ErrPrecondition) {
		t.Errorf("read pinned to a replaced version: %v", err)
	}
	// A Version with only an ID reads that version, replaced or not.
	if got, gi, err := read(t, b, "k", 0, -1, backends.ReadOptions{IfVersion: backends.Version{ID: p1.Version.ID}}); err != nil || string(got) != "first" || gi.Version != p1.Version {
		t.Errorf("read by version id = %q, %+v, %v", got, gi.Version, err)
	}
}

// TestExactRefusedVersions checks that reads by version id (Exact) that S3
// refuses for want of the version, rather than with NoSuchVersion, are
// ErrPrecondition: an id S3 cannot parse (400) and the id of a delete
// marker (405).
func TestExactRefusedVersions(t *testing.T) {
	b := open(t, newBucket(t, true))
	put(t, b, "k", []byte("data"))
	del, err := b.client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String("k")})
	if err != nil || aws.ToString(del.VersionId) == "" || !aws.ToBool(del.DeleteMarker) {
		t.Fatalf("delete on a versioned bucket: %+v, %v; want a delete marker with a version id", del, err)
	}
	for _, id := range []string{"not-a-version-id", aws.ToString(del.VersionId)} {
		for _, n := range []int64{-1, 2, 0} {
			_, _, err := read(t, b, "k", 0, n, backends.ReadOptions{IfVersion: backends.Version{ID: id}, Exact: true})
			if !errors.Is(err, backends.ErrPrecondition) {
				t.Errorf("Exact read (0, %d) of version %q: %v, want ErrPrecondition", n, id, err)
			}
		}
	}
}

func TestPutChecksums(t *testing.T) {
	b := open(t, newBucket(t, false))
	data := []byte("checked content")
	good := backends.PutOptions{Checksums: backends.Checksums{CRC32C: crc32c(data), MD5: md5sum(data)}}
	if _, err := b.Put(t.Context(), "good", bytes.NewReader(data), int64(len(data)), good); err != nil {
		t.Fatalf("Put with right checksums: %v", err)
	}
	for name, cs := range map[string]backends.Checksums{
		"crc32c": {CRC32C: crc32c([]byte("other"))},
		"md5":    {MD5: md5sum([]byte("other"))},
	} {
		_, err := b.Put(t.Context(), "bad-"+name, bytes.NewReader(data), int64(len(data)), backends.PutOptions{Checksums: cs})
		if !errors.Is(err, backends.ErrChecksum) {
			t.Errorf("Put with a wrong %s: %v, want ErrChecksum", name, err)
		}
		if _, err := b.Stat(t.Context(), "bad-"+name); !errors.Is(err, backends.ErrNotExist) {
			t.Errorf("object with a wrong %s is visible: %v", name, err)
		}
	}
}

// TestPutSection checks that Put sends exactly size bytes from the body's
// current position, also when the SDK rewinds the body.
func TestPutSection(t *testing.T) {
	b := open(t, newBucket(t, false))
	r := strings.NewReader("skip-THE DATA-trailing")
	if _, err := r.Seek(5, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(t.Context(), "k", r, 8, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _, err := read(t, b, "k", 0, -1, backends.ReadOptions{}); err != nil || string(got) != "THE DATA" {
		t.Errorf("stored %q, %v", got, err)
	}
	short := strings.NewReader("abc")
	if _, err := b.Put(t.Context(), "short", short, 10, backends.PutOptions{}); err == nil {
		t.Error("Put of a body shorter than size succeeded")
	}
	if _, err := b.Stat(t.Context(), "short"); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("short put left an object: %v", err)
	}
}

func keys(t *testing.T, seq func(func(backends.Entry, error) bool)) []string {
	t.Helper()
	var out []string
	for e, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		k := e.Key
		if e.IsPrefix {
			k += "(dir)"
		}
		out = append(out, k)
	}
	return out
}

// TestListWeirdKeys lists keys that XML cannot carry raw and keys whose
// URL-encoded forms sort differently from the keys, across small pages.
func TestListWeirdKeys(t *testing.T) {
	b := open(t, newBucket(t, false))
	b.pageSize = 2
	names := []string{"a b", "a+b", "a%b", "a#b", "a\x01ctl", "a/x", "a/y/z", "a-b", "a.b", "a0", "aé", "a~", "a日本/x", "b/", "b/c"}
	for _, k := range names {
		put(t, b, k, []byte(k))
	}
	all := slices.Clone(names)
	slices.Sort(all)
	if got := keys(t, b.List(t.Context(), "")); !slices.Equal(got, all) {
		t.Errorf("List = %q\nwant   %q", got, all)
	}
	wantDir := []string{"a\x01ctl", "a b", "a#b", "a%b", "a+b", "a-b", "a.b", "a/(dir)", "a0", "a~", "aé", "a日本/(dir)", "b/(dir)"}
	if got := keys(t, b.ListDir(t.Context(), "")); !slices.Equal(got, wantDir) {
		t.Errorf("ListDir = %q\nwant      %q", got, wantDir)
	}
	if got := keys(t, b.ListDir(t.Context(), "b/")); !slices.Equal(got, []string{"b/", "b/c"}) {
		t.Errorf("ListDir(b/) = %q", got)
	}
	if got := keys(t, b.ListDir(t.Context(), "a/")); !slices.Equal(got, []string{"a/x", "a/y/(dir)"}) {
		t.Errorf("ListDir(a/) = %q", got)
	}
	for _, k := range names {
		if got, _, err := read(t, b, k, 0, -1, backends.ReadOptions{}); err != nil || string(got) != k {
			t.Errorf("read %q = %q, %v", k, got, err)
		}
	}
	for e, err := range b.List(t.Context(), "a") {
		if err != nil || e.Size != int64(len(e.Key)) || e.Version.ETag == "" || e.ModTime.IsZero() {
			t.Errorf("List entry %+v, %v", e, err)
		}
		break
	}
}

// TestFastListMatchesSDK lists awkward keys and prefixes, in pages of
// the store's size and of two keys, three ways: through the lean path
// (request built here, page read by the scanner), through the SDK with the
// scanner as its deserializer, and through the SDK alone; all three must
// agree.
func TestFastListMatchesSDK(t *testing.T) {
	bucket := newBucket(t, false)
	rec := &recorder{}
	lean := open(t, bucket, func(o *Options) { o.HTTPClient = &http.Client{Transport: rec} })
	fast, sdk := open(t, bucket), open(t, bucket)
	fast.lean, sdk.lean = nil, nil
	sdk.sdkList = true
	names := []string{"a b", "a b/c", "a&b", "a<b>", "a\"q'", "a%b", "a%/x", "a+b/c", "a\x01ctl", "a/x", "a/y/z",
		"aé", "aé/x", "a日本/x", "a~/x", "b/", "b/c", "c"}
	for _, k := range names {
		put(t, fast, k, []byte(k))
	}
	entries := func(seq iter.Seq2[backends.Entry, error]) []backends.Entry {
		t.Helper()
		var out []backends.Entry
		for e, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
		return out
	}
	same := func(a, b backends.Entry) bool {
		return a.Key == b.Key && a.IsPrefix == b.IsPrefix && a.Size == b.Size &&
			a.ModTime.Equal(b.ModTime) && a.Version == b.Version
	}
	for _, pageSize := range []int32{0, 2} {
		lean.pageSize, fast.pageSize, sdk.pageSize = pageSize, pageSize, pageSize
		for _, prefix := range []string{"", "a/", "a b", "a&", "a%", "a+b/", "aé", "a日本/", "a~/"} {
			for name, list := range map[string]func(*Backend) iter.Seq2[backends.Entry, error]{
				"List":    func(b *Backend) iter.Seq2[backends.Entry, error] { return b.List(t.Context(), prefix) },
				"ListDir": func(b *Backend) iter.Seq2[backends.Entry, error] { return b.ListDir(t.Context(), prefix) },
			} {
				want := entries(list(sdk))
				for path, b := range map[string]*Backend{"lean": lean, "fast": fast} {
					if got := entries(list(b)); len(want) == 0 || !slices.EqualFunc(got, want, same) {
						t.Errorf("%s(%q), pages of %d, %s: %+v\nSDK %+v", name, prefix, pageSize, path, got, want)
					}
				}
			}
		}
	}
	if n := fast.listFallbacks.Load(); n != 0 {
		t.Errorf("%d pages left to the SDK's deserializer, want 0", n)
	}
	// Every page of the lean backend took the lean path (the SDK marks
	// its requests with an invocation id).
	sdkMade, pages := 0, len(rec.header(http.MethodGet, "Amz-Sdk-Invocation-Id"))
	for _, id := range rec.header(http.MethodGet, "Amz-Sdk-Invocation-Id") {
		if id != "" {
			sdkMade++
		}
	}
	if sdkMade != 0 || int64(pages) != lean.lean.served.Load() {
		t.Errorf("%d of %d pages made by the SDK, %d served lean", sdkMade, pages, lean.lean.served.Load())
	}
}

func TestCancel(t *testing.T) {
	b := open(t, newBucket(t, false))
	put(t, b, "k", bytes.Repeat([]byte("x"), 1<<20))
	ctx, cancel := context.WithCancel(t.Context())
	rc, _, err := b.GetRange(ctx, "k", 0, -1, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cancel()
	if _, err := io.ReadAll(rc); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v", err)
	}
	if _, err := b.Stat(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat: %v", err)
	}
	if _, err := b.Put(ctx, "k2", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put: %v", err)
	}
	for _, err := range b.List(ctx, "") {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("List: %v", err)
		}
	}
	if _, err := b.Stat(t.Context(), "k2"); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("cancelled Put left an object: %v", err)
	}
}

func TestMultipartResume(t *testing.T) {
	bucket := newBucket(t, false)
	b := open(t, bucket)
	b.pageSize = 1
	p1 := bytes.Repeat([]byte("1"), minPartSize)
	p2 := []byte("the last part")
	whole := append(slices.Clone(p1), p2...)
	u, err := b.CreateUpload(t.Context(), "dir/big", backends.PutOptions{
		ContentType: "application/x-test", Metadata: map[string]string{"mtime": "42"},
		Checksums: backends.Checksums{CRC32C: crc32c(whole)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UploadPart(t.Context(), u, 2, bytes.NewReader(p2), int64(len(p2))); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UploadPart(t.Context(), u, 1, bytes.NewReader(p1), int64(len(p1))); err != nil {
		t.Fatal(err)
	}
	other, err := b.CreateUpload(t.Context(), "other", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "d", "dir/", "dir/big"} {
		var found []string
		for pu, err := range b.ListUploads(t.Context(), p) {
			if err != nil {
				t.Fatal(err)
			}
			if pu.Key == u.Key && (pu.ID != u.ID || pu.Started.IsZero()) {
				t.Errorf("ListUploads(%q) = %+v, want %+v", p, pu, u)
			}
			found = append(found, pu.Key)
		}
		want := []string{"dir/big"}
		if p == "" {
			want = []string{"dir/big", "other"}
		}
		if slices.Sort(found); !slices.Equal(found, want) {
			t.Errorf("ListUploads(%q) = %q, want %q", p, found, want)
		}
	}
	if err := b.AbortUpload(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(t.Context(), "dir/big"); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("object visible before Complete: %v", err)
	}

	// A new process: the upload comes back from JSON, parts from ListParts.
	saved, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	var u2 backends.Upload
	if err := json.Unmarshal(saved, &u2); err != nil {
		t.Fatal(err)
	}
	b2 := open(t, bucket)
	b2.pageSize = 1
	parts, err := b2.ListParts(t.Context(), u2)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[0].Number != 1 || parts[1].Number != 2 || parts[0].Size != minPartSize ||
		!bytes.Equal(parts[1].CRC32C, crc32c(p2)) {
		t.Fatalf("ListParts = %+v", parts)
	}
	oi, err := b2.CompleteUpload(t.Context(), u2, parts)
	if err != nil {
		t.Fatal(err)
	}
	si, err := b2.Stat(t.Context(), "dir/big")
	if err != nil {
		t.Fatal(err)
	}
	if si.Size != int64(len(whole)) || oi.Size != si.Size || oi.Version != si.Version ||
		si.ContentType != "application/x-test" || si.Metadata["mtime"] != "42" {
		t.Errorf("complete %+v, stat %+v", oi, si)
	}
	if !bytes.Equal(si.Checksums.CRC32C, crc32c(whole)) || si.Checksums.MD5 != nil {
		t.Errorf("stat checksums %x/%x, want crc32c %x and no md5", si.Checksums.CRC32C, si.Checksums.MD5, crc32c(whole))
	}
	if _, err := b2.ListParts(t.Context(), u2); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("ListParts after Complete: %v", err)
	}
	if err := b2.AbortUpload(t.Context(), u2); err != nil {
		t.Errorf("Abort after Complete: %v", err)
	}
}

func TestMultipartBadChecksum(t *testing.T) {
	b := open(t, newBucket(t, false))
	data := []byte("some content")
	u, err := b.CreateUpload(t.Context(), "k", backends.PutOptions{Checksums: backends.Checksums{CRC32C: crc32c([]byte("other"))}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.UploadPart(t.Context(), u, 1, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CompleteUpload(t.Context(), u, []backends.Part{p}); !errors.Is(err, backends.ErrChecksum) {
		t.Errorf("Complete with a wrong CRC32C: %v", err)
	}
	if _, err := b.Stat(t.Context(), "k"); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("object visible after a failed Complete: %v", err)
	}
	if err := b.AbortUpload(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	for pu, err := range b.ListUploads(t.Context(), "") {
		t.Errorf("upload %+v, %v left after Abort", pu, err)
	}
	if _, err := b.ListParts(t.Context(), u); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("ListParts of an aborted upload: %v", err)
	}
}

// recorder is an HTTP transport that records the requests it carries.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(context.Background()))
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) header(method, name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, q := range r.reqs {
		if q.Method == method {
			out = append(out, q.Header.Get(name))
		}
	}
	return out
}

// TestKMSRequests checks that SSE-KMS is requested on Put and CreateUpload.
// The test MinIO has no KMS, so it refuses those requests; what can be
// checked is that the headers were sent.
func TestKMSRequests(t *testing.T) {
	rec := &recorder{}
	b := open(t, newBucket(t, false), func(o *Options) {
		o.KMSKeyID = "alias/ferry-test"
		o.HTTPClient = &http.Client{Transport: rec}
	})
	_, err := b.Put(t.Context(), "k", strings.NewReader("x"), 1, backends.PutOptions{})
	t.Logf("Put with SSE-KMS on a MinIO without KMS: %v", err)
	_, err = b.CreateUpload(t.Context(), "k", backends.PutOptions{KMSKeyID: "other-key"})
	t.Logf("CreateUpload with SSE-KMS on a MinIO without KMS: %v", err)
	if got := rec.header(http.MethodPut, "X-Amz-Server-Side-Encryption"); !slices.Equal(got, []string{"aws:kms"}) {
		t.Errorf("PUT sse headers %q", got)
	}
	if got := rec.header(http.MethodPut, "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"); !slices.Equal(got, []string{"alias/ferry-test"}) {
		t.Errorf("PUT kms key headers %q", got)
	}
	if got := rec.header(http.MethodPost, "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"); !slices.Equal(got, []string{"other-key"}) {
		t.Errorf("create-upload kms key headers %q", got)
	}
}

// TestNoSDKOutput checks that a ranged read, whose response carries no
// checksum, makes the SDK print nothing (it warns on stderr by default).
func TestNoSDKOutput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string)
	go func() {
		data, _ := io.ReadAll(r)
		out <- string(data)
	}()
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	restore := func() { os.Stdout, os.Stderr = stdout, stderr }
	defer restore()

	b := open(t, newBucket(t, false))
	put(t, b, "k", []byte("0123456789"))
	got, _, err := read(t, b, "k", 2, 3, backends.ReadOptions{})
	got2, _, err2 := read(t, b, "k", 0, -1, backends.ReadOptions{})
	restore()
	w.Close()
	printed := <-out
	if err != nil || err2 != nil || string(got) != "234" || string(got2) != "0123456789" {
		t.Fatalf("reads = %q, %v; %q, %v", got, err, got2, err2)
	}
	if printed != "" {
		t.Errorf("the SDK printed %q", printed)
	}
}

// TestCABundle checks that the driver works with AWS_CA_BUNDLE set, which
// the SDK only accepts on its own buildable HTTP client, and that the
// bundle is really read.
func TestCABundle(t *testing.T) {
	const bundle = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(bundle); err != nil {
		t.Skipf("no CA bundle on this system: %v", err)
	}
	bucket := newBucket(t, false)
	t.Setenv("AWS_CA_BUNDLE", bundle)
	put(t, open(t, bucket), "k", []byte("x"))
	custom := open(t, bucket, func(o *Options) { o.HTTPClient = &http.Client{} })
	if _, err := custom.Stat(t.Context(), "k"); err != nil {
		t.Errorf("with a custom HTTP client: %v", err)
	}
	t.Setenv("AWS_CA_BUNDLE", t.TempDir()+"/missing.pem")
	if _, err := New(t.Context(), Options{Bucket: bucket, Endpoint: srv.Endpoint, AccessKey: "a", SecretKey: "b"}); err == nil {
		t.Error("New ignored an AWS_CA_BUNDLE that does not exist")
	}
}

// TestCABundleTLS checks AWS_CA_BUNDLE against an https endpoint, a TLS
// proxy in front of MinIO with a certificate no system bundle trusts:
// with that certificate in the bundle the driver reads and writes
// (through the lean path and the SDK's), with another bundle it is
// refused, so the bundle is the client's trust.
func TestCABundleTLS(t *testing.T) {
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	proxy.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	proxy.StartTLS()
	defer proxy.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	bucket := newBucket(t, false)
	viaTLS := func(o *Options) { o.Endpoint = proxy.URL }

	t.Setenv("AWS_CA_BUNDLE", ca)
	b := open(t, bucket, viaTLS)
	put(t, b, "k", []byte("0123456789"))
	if got, _, err := read(t, b, "k", 2, 3, backends.ReadOptions{}); err != nil || string(got) != "234" {
		t.Fatalf("read over TLS = %q, %v", got, err)
	}
	if _, err := b.Stat(t.Context(), "k"); err != nil {
		t.Fatalf("Stat over TLS: %v", err)
	}
	if b.lean == nil || b.lean.served.Load() == 0 {
		t.Error("the lean path served nothing over TLS")
	}

	t.Setenv("AWS_CA_BUNDLE", otherCA(t))
	t.Setenv("AWS_MAX_ATTEMPTS", "1") // the SDK would retry the handshake
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := open(t, bucket, viaTLS).Stat(ctx, "k"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Stat with a bundle without the proxy's certificate = %v, want a certificate error", err)
	}
}

// otherCA writes a bundle holding a fresh self-signed CA certificate and
// returns its path.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		if strings.HasSuffix(t.Name(), "/Keys/Raw") {
			t.Skip("MinIO refuses raw keys S3 holds (\"..\" segments, \"//\", 1,000-byte segments) and " +
				"strips a leading \"/\"; TestRawKeysMinIO checks the driver's side")
		}
		return open(t, newBucket(t, false))
	}, backendtest.Caps{
		RawKeys: true,
		Reopen: func(t *testing.T, b backends.Backend) backends.Backend {
			return open(t, b.(*Backend).bucket)
		},
		OpenVersioned: func(t *testing.T) backends.Backend {
			return open(t, newBucket(t, true))
		},
	})
}

// TestRawKeysMinIO checks that keys the test MinIO refuses, though S3
// holds them, fail with ErrInvalidKey and leave nothing behind.
func TestRawKeysMinIO(t *testing.T) {
	b := open(t, newBucket(t, false))
	for _, key := range []string{"../dotdot", "raw/../up", "raw//double", strings.Repeat("s", 1000)} {
		_, err := b.Put(t.Context(), key, strings.NewReader("x"), 1, backends.PutOptions{})
		if !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("Put(%.20q): %v, want ErrInvalidKey", key, err)
		}
	}
	for e, err := range b.List(t.Context(), "") {
		t.Errorf("List after refused puts: %q, %v", e.Key, err)
	}
}

// faulty answers requests itself with a 500 InternalError, as an S3 having
// trouble does, while fail > 0, and passes the others to the server.
type faulty struct {
	mu     sync.Mutex
	fail   int    // GUARDED_BY(mu): requests still to fail
	seen   int    // GUARDED_BY(mu): requests carried
	onFail func() // called after each failed request
}

func (f *faulty) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.seen++
	failing := f.fail > 0
	if failing {
		f.fail--
	}
	f.mu.Unlock()
	if !failing {
		return http.DefaultTransport.RoundTrip(req)
	}
	if req.Body != nil {
		req.Body.Close()
	}
	if f.onFail != nil {
		f.onFail()
	}
	const msg = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`
	return &http.Response{
		StatusCode: http.StatusInternalServerError, Status: "500 Internal Server Error",
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/xml"}},
		Body:          io.NopCloser(strings.NewReader(msg)),
		ContentLength: int64(len(msg)), Request: req,
	}, nil
}

// set arms the next n requests to fail and resets the count.
func (f *faulty) set(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail, f.seen = n, 0
}

func (f *faulty) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen
}

// TestRetries checks that server errors are retried, up to the attempts
// AWS_MAX_ATTEMPTS allows, and that cancelling stops the retries at once.
func TestRetries(t *testing.T) {
	t.Setenv("AWS_MAX_ATTEMPTS", "2")
	f := &faulty{}
	b := open(t, newBucket(t, false), func(o *Options) { o.HTTPClient = &http.Client{Transport: f} })

	f.set(1)
	if _, err := b.Put(t.Context(), "k", strings.NewReader("retried body"), 12, backends.PutOptions{}); err != nil || f.count() != 2 {
		t.Fatalf("Put after one failure: %v after %d requests, want success after 2", err, f.count())
	}
	f.set(1)
	if got, _, err := read(t, b, "k", 8, -1, backends.ReadOptions{}); err != nil || string(got) != "body" || f.count() != 2 {
		t.Fatalf("GetRange after one failure = %q, %v after %d requests", got, err, f.count())
	}
	f.set(2)
	if _, err := b.Stat(t.Context(), "k"); err == nil || f.count() != 2 {
		t.Fatalf("Stat failing every attempt: %v after %d requests, want an error after 2", err, f.count())
	}

	ctx, cancel := context.WithCancel(t.Context())
	f.set(100)
	f.onFail = cancel
	if _, err := b.Put(ctx, "k", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, context.Canceled) || f.count() != 1 {
		t.Fatalf("Put cancelled during its first failure: %v after %d requests, want context.Canceled after 1", err, f.count())
	}
}

// TestStatReportsSDKCRC32: an object uploaded by another client with the
// AWS SDKs' default CRC32 checksum reports it, so load verifies with a CRC
// instead of a whole-object MD5.
func TestStatReportsSDKCRC32(t *testing.T) {
	ctx := t.Context()
	bucket := testenv.BucketName(t)
	if err := srv.CreateBucket(ctx, bucket, false); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("crc32 of ferry "), 1000)
	_, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"),
		Body: bytes.NewReader(data), ChecksumAlgorithm: "CRC32"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := open(t, bucket).Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	want := binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data))
	if !bytes.Equal(info.Checksums.CRC32, want) {
		t.Fatalf("Stat CRC32 = %x, want %x (all: %+v)", info.Checksums.CRC32, want, info.Checksums)
	}
}

// TestStatReportsSDKCRC64NVME: an object uploaded as recent AWS SDKs and
// CLI do, with a CRC64NVME full-object checksum, reports it through Stat
// (a HEAD with checksum mode enabled), so load verifies with that CRC
// instead of a whole-object MD5 (or nothing, for multipart uploads).
func TestStatReportsSDKCRC64NVME(t *testing.T) {
	ctx := t.Context()
	bucket := newBucket(t, false)
	data := bytes.Repeat([]byte("crc64nvme of ferry "), 1000)
	sum := binary.BigEndian.AppendUint64(nil, crc64.Checksum(data, crc64.MakeTable(0x9a6c9329ac4bc9b5)))
	_, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"),
		Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme})
	if err != nil {
		t.Fatal(err)
	}
	head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"),
		ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(head.ChecksumCRC64NVME); got != base64.StdEncoding.EncodeToString(sum) {
		t.Fatalf("the server's HEAD gives x-amz-checksum-crc64nvme %q (type %q), want %q", got, head.ChecksumType,
			base64.StdEncoding.EncodeToString(sum))
	}
	info, err := open(t, bucket).Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info.Checksums.CRC64NVME, sum) {
		t.Fatalf("Stat CRC64NVME = %x, want %x (all: %+v)", info.Checksums.CRC64NVME, sum, info.Checksums)
	}
}

// TestForeignChecksums: objects uploaded by the AWS SDK as other programs
// upload them (CRC64NVME as recent SDKs and the CLI send it, single-part
// and as a full-object multipart checksum, whose ETag is no MD5; CRC32 as
// older SDKs do) report their whole-object CRC, and the right one.
func TestForeignChecksums(t *testing.T) {
	bucket := newBucket(t, false)
	client := srv.Client()
	single := func(alg types.ChecksumAlgorithm) func(t *testing.T, key string, data []byte) {
		return func(t *testing.T, key string, data []byte) {
			_, err := client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
				Body: bytes.NewReader(data), ChecksumAlgorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	multipart := func(t *testing.T, key string, data []byte) {
		ctx := t.Context()
		up, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme, ChecksumType: types.ChecksumTypeFullObject})
		if err != nil {
			t.Fatal(err)
		}
		var parts []types.CompletedPart
		for n, off := int32(1), 0; off < len(data); n, off = n+1, off+minPartSize {
			chunk := data[off:min(off+minPartSize, len(data))]
			out, err := client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key),
				UploadId: up.UploadId, PartNumber: aws.Int32(n), Body: bytes.NewReader(chunk),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme})
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag, ChecksumCRC64NVME: out.ChecksumCRC64NVME})
		}
		_, err = client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
			UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
			ChecksumType: types.ChecksumTypeFullObject})
		if err != nil {
			t.Fatal(err)
		}
	}
	backendtest.ForeignChecksums(t, open(t, bucket), []backendtest.Upload{
		{Name: "single-part CRC64NVME", Size: 100_000, Put: single(types.ChecksumAlgorithmCrc64nvme)},
		{Name: "single-part CRC32", Size: 100_000, Put: single(types.ChecksumAlgorithmCrc32)},
		{Name: "multipart CRC64NVME full-object", Size: minPartSize + 1000, Put: multipart},
	})
	st, err := open(t, bucket).Stat(t.Context(), "foreign/2")
	if err != nil || len(st.Checksums.CRC64NVME) != 8 || st.Checksums.MD5 != nil {
		t.Errorf("multipart CRC64NVME object: %+v, %v; want a CRC64NVME and no MD5 (its ETag is not one)", st.Checksums, err)
	}
}

// TestWholeCRC decodes the checksums of HEAD responses without a server:
// full-object values of the right size, nothing for composite checksums
// of parts, malformed values or the wrong size.
func TestWholeCRC(t *testing.T) {
	nvme := []byte{0xae, 0x8b, 0x14, 0x86, 0x0a, 0x79, 0x98, 0x88}
	crc := []byte{0xe3, 0x06, 0x92, 0x83}
	b64 := func(p []byte) *string { return aws.String(base64.StdEncoding.EncodeToString(p)) }
	out := &s3.HeadObjectOutput{ChecksumCRC64NVME: b64(nvme), ChecksumType: types.ChecksumTypeFullObject}
	if got := headChecksums(backends.Checksums{}, out); !bytes.Equal(got.CRC64NVME, nvme) || got.CRC32C != nil || got.CRC32 != nil {
		t.Errorf("full-object CRC64NVME: %+v", got)
	}
	out = &s3.HeadObjectOutput{ChecksumCRC32C: b64(crc)} // no type: single-part
	if got := headChecksums(backends.Checksums{MD5: []byte{1}}, out); !bytes.Equal(got.CRC32C, crc) || got.CRC64NVME != nil || got.MD5 == nil {
		t.Errorf("untyped CRC32C: %+v", got)
	}
	for _, c := range []struct {
		name string
		b64  *string
		typ  types.ChecksumType
		size int
	}{
		{"composite", b64(crc), types.ChecksumTypeComposite, 4},
		{"composite suffix", aws.String(*b64(crc) + "-3"), "", 4},
		{"4 bytes as CRC64NVME", b64(crc), types.ChecksumTypeFullObject, 8},
		{"8 bytes as CRC32", b64(nvme), types.ChecksumTypeFullObject, 4},
		{"not base64", aws.String("%%%%"), "", 4},
		{"absent", nil, types.ChecksumTypeFullObject, 8},
	} {
		if got := wholeCRC(c.b64, c.typ, c.size); got != nil {
			t.Errorf("%s: %x, want nil", c.name, got)
		}
	}
}
