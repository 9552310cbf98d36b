package gcs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/backendtest"
	"github.com/ferryio/ferry/integration/testenv"
)

// fake is the fake-gcs-server of this test binary, set once by TestMain.
var fake *testenv.FakeGCS

func TestMain(m *testing.M) {
	testenv.Main(m, func(e *testenv.Env) (err error) {
		fake, err = e.FakeGCS()
		return err
	})
}

// newBucket creates a fresh bucket on the fake server.
func newBucket(t *testing.T, versioned bool) string {
	t.Helper()
	name := testenv.BucketName(t)
	if err := fake.CreateBucket(t.Context(), name, versioned); err != nil {
		t.Fatal(err)
	}
	return name
}

// open returns a new driver client for bucket, talking to the fake server
// through an http:// endpoint (so without credentials).
func open(t *testing.T, bucket string) *Backend {
	t.Helper()
	b, err := New(t.Context(), Options{Bucket: bucket, Endpoint: "http://" + fake.Host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return open(t, newBucket(t, false))
	}, backendtest.Caps{
		RawKeys: true,
		Reopen: func(t *testing.T, b backends.Backend) backends.Backend {
			return open(t, strings.TrimPrefix(b.String(), "gs://"))
		},
		OpenVersioned: func(t *testing.T) backends.Backend {
			return open(t, newBucket(t, true))
		},
	})
}

// rawNames lists every object of the bucket under prefix with the plain
// library, bypassing the driver (which hides the reserved prefix).
func rawNames(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	c, err := storage.NewClient(t.Context(), option.WithEndpoint("http://"+fake.Host+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var names []string
	it := c.Bucket(bucket).Objects(t.Context(), &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, a.Name)
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
			k = "P:" + k
		}
		out = append(out, k)
	}
	return out
}

func put(t *testing.T, b *Backend, key, data string) backends.ObjectInfo {
	t.Helper()
	info, err := b.Put(t.Context(), key, strings.NewReader(data), int64(len(data)), backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func read(ctx context.Context, b *Backend, key string, off, n int64, v backends.Version) (string, backends.ObjectInfo, error) {
	rc, info, err := b.GetRange(ctx, key, off, n, backends.ReadOptions{IfVersion: v})
	if err != nil {
		return "", info, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	return string(data), info, err
}

// TestGenerationPinning checks reads pinned to a generation on a versioned
// bucket, where the old generation is still readable: a pinned read of a
// replaced object must fail rather than serve either generation.
func TestGenerationPinning(t *testing.T) {
	b := open(t, newBucket(t, true))
	v1 := put(t, b, "k", "first")
	v2 := put(t, b, "k", "second!")
	if v1.Version.ID == v2.Version.ID || v1.Version.ID == "" {
		t.Fatalf("generations %q and %q", v1.Version.ID, v2.Version.ID)
	}
	for _, v := range []backends.Version{v1.Version, {ID: v1.Version.ID}, {ETag: v1.Version.ETag}} {
		_, _, err := read(t.Context(), b, "k", 0, -1, v)
		if !errors.Is(err, backends.ErrPrecondition) {
			t.Errorf("read pinned to %v after replace: %v, want ErrPrecondition", v, err)
		}
	}
	got, info, err := read(t.Context(), b, "k", 1, 3, v2.Version)
	if err != nil || got != "eco" || info.Size != 7 || info.Version != v2.Version {
		t.Fatalf("pinned read = %q size %d version %v, %v", got, info.Size, info.Version, err)
	}
	if want := crcBytes(crc32.Checksum([]byte("second!"), castagnoli)); !bytes.Equal(info.Checksums.CRC32C, want) {
		t.Errorf("pinned read crc32c %x, want %x", info.Checksums.CRC32C, want)
	}
	// Edges of a pinned read: at the end, beyond it, and an empty object.
	if got, _, err := read(t.Context(), b, "k", 7, 10, v2.Version); err != nil || got != "" {
		t.Errorf("pinned read at end = %q, %v", got, err)
	}
	if _, _, err := read(t.Context(), b, "k", 8, 1, v2.Version); !errors.Is(err, backends.ErrInvalidRange) {
		t.Errorf("pinned read beyond end: %v, want ErrInvalidRange", err)
	}
	e := put(t, b, "empty", "")
	if got, _, err := read(t.Context(), b, "empty", 0, 5, e.Version); err != nil || got != "" {
		t.Errorf("pinned read of empty object = %q, %v", got, err)
	}
	if _, _, err := read(t.Context(), b, "empty", 0, 5, v2.Version); !errors.Is(err, backends.ErrPrecondition) {
		t.Errorf("read of empty object pinned to another generation: %v", err)
	}
}

// multipartUpload uploads parts of data (one byte each but the last) and
// returns the upload and its parts.
func multipartUpload(t *testing.T, b *Backend, key string, data []byte, opts backends.PutOptions) (backends.Upload, []backends.Part) {
	t.Helper()
	u, err := b.CreateUpload(t.Context(), key, opts)
	if err != nil {
		t.Fatal(err)
	}
	var parts []backends.Part
	for i := range data {
		p, err := b.UploadPart(t.Context(), u, i+1, bytes.NewReader(data[i:i+1]), 1)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	return u, parts
}

// TestComposeManyParts completes an upload of 70 parts: two levels of
// intermediate composes (32 sources at most), then checks the bytes, the
// whole-object CRC32C and that no upload object is left.
func TestComposeManyParts(t *testing.T) {
	bucket := newBucket(t, false)
	b := open(t, bucket)
	data := make([]byte, 70)
	for i := range data {
		data[i] = byte('A' + i%58)
	}
	crc := binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, castagnoli))
	opts := backends.PutOptions{ContentType: "text/x-test", Metadata: map[string]string{"mtime": "123"},
		Checksums: backends.Checksums{CRC32C: crc}}
	u, parts := multipartUpload(t, b, "big", data, opts)
	listed, err := open(t, bucket).ListParts(t.Context(), u)
	if err != nil || !slices.EqualFunc(listed, parts, func(a, b backends.Part) bool {
		return a.Number == b.Number && a.ETag == b.ETag && a.Size == b.Size && bytes.Equal(a.CRC32C, b.CRC32C)
	}) {
		t.Fatalf("ListParts = %v, %v; want %v", listed, err, parts)
	}
	info, err := b.CompleteUpload(t.Context(), u, parts)
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "big" || info.Size != 70 || !bytes.Equal(info.Checksums.CRC32C, crc) {
		t.Errorf("CompleteUpload info = %+v", info)
	}
	got, st, err := read(t.Context(), b, "big", 0, -1, backends.Version{})
	if err != nil || got != string(data) {
		t.Fatalf("read back %q, %v", got, err)
	}
	if st.ContentType != "text/x-test" || st.Metadata["mtime"] != "123" {
		t.Errorf("content type %q metadata %v", st.ContentType, st.Metadata)
	}
	if left := rawNames(t, bucket, reservedPrefix); len(left) != 0 {
		t.Errorf("upload objects left after complete: %q", left)
	}
	if _, err := b.ListParts(t.Context(), u); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("ListParts after complete: %v, want ErrNotExist", err)
	}
}

// TestCompleteChecksumMismatch checks that a whole-object checksum that
// does not match leaves the key as it was and the upload abortable.
func TestCompleteChecksumMismatch(t *testing.T) {
	bucket := newBucket(t, false)
	b := open(t, bucket)
	before := put(t, b, "k", "old")
	for _, sums := range []backends.Checksums{
		{CRC32C: []byte{1, 2, 3, 4}},
		{MD5: bytes.Repeat([]byte{7}, 16)},
	} {
		u, parts := multipartUpload(t, b, "k", []byte("new content"), backends.PutOptions{Checksums: sums})
		if _, err := b.CompleteUpload(t.Context(), u, parts); !errors.Is(err, backends.ErrChecksum) {
			t.Errorf("CompleteUpload with wrong %+v: %v, want ErrChecksum", sums, err)
		}
		st, err := b.Stat(t.Context(), "k")
		if err != nil || st.Version != before.Version {
			t.Errorf("key after failed complete: %+v, %v", st, err)
		}
		if err := b.AbortUpload(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	if left := rawNames(t, bucket, reservedPrefix); len(left) != 0 {
		t.Errorf("upload objects left after abort: %q", left)
	}
}

// TestReservedPrefixHidden checks that upload objects, which the raw
// listing shows, never appear through the driver, and that keys under the
// reserved prefix are refused.
func TestReservedPrefixHidden(t *testing.T) {
	bucket := newBucket(t, false)
	b := open(t, bucket)
	for _, k := range []string{"-before", ".f", ".ferry-uploadsX", ".ferry-uploads0", "z/after"} {
		put(t, b, k, k)
	}
	u, _ := multipartUpload(t, b, "pending", []byte("xyz"), backends.PutOptions{})
	if raw := rawNames(t, bucket, reservedPrefix); len(raw) != 4 {
		t.Fatalf("raw listing of uploads = %q, want upload.json and 3 parts", raw)
	}
	want := []string{"-before", ".f", ".ferry-uploads0", ".ferry-uploadsX", "z/after"}
	for _, p := range []string{"", ".", ".ferry"} {
		got := keys(t, b.List(t.Context(), p))
		var w []string
		for _, k := range want {
			if strings.HasPrefix(k, p) {
				w = append(w, k)
			}
		}
		if !slices.Equal(got, w) {
			t.Errorf("List(%q) = %q, want %q", p, got, w)
		}
	}
	if got, w := keys(t, b.ListDir(t.Context(), "")), []string{"-before", ".f", ".ferry-uploads0", ".ferry-uploadsX", "P:z/"}; !slices.Equal(got, w) {
		t.Errorf("ListDir(\"\") = %q, want %q", got, w)
	}
	for _, p := range []string{reservedPrefix, reservedPrefix + u.ID + "/"} {
		if got := keys(t, b.List(t.Context(), p)); len(got) != 0 {
			t.Errorf("List(%q) = %q", p, got)
		}
		if got := keys(t, b.ListDir(t.Context(), p)); len(got) != 0 {
			t.Errorf("ListDir(%q) = %q", p, got)
		}
	}
	key := reservedPrefix + u.ID + "/part-00001"
	if _, err := b.Put(t.Context(), reservedPrefix+"x", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrInvalidKey) {
		t.Errorf("Put under the reserved prefix: %v", err)
	}
	if _, err := b.Stat(t.Context(), key); !errors.Is(err, backends.ErrInvalidKey) {
		t.Errorf("Stat of a part: %v", err)
	}
	if err := b.Delete(t.Context(), key); !errors.Is(err, backends.ErrInvalidKey) {
		t.Errorf("Delete of a part: %v", err)
	}
	var found []string
	for up, err := range b.ListUploads(t.Context(), "pen") {
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, up.ID)
	}
	if !slices.Equal(found, []string{u.ID}) {
		t.Errorf("ListUploads(\"pen\") = %q, want %q", found, u.ID)
	}
	for up, err := range b.ListUploads(t.Context(), "z") {
		t.Errorf("ListUploads(\"z\") yielded %+v, %v", up, err)
	}
}

// TestListDirPages lists with tiny pages, so that objects and common
// prefixes spread over many pages (fake-gcs-server repeats prefixes on
// every page), and checks order and uniqueness.
func TestListDirPages(t *testing.T) {
	b := open(t, newBucket(t, false))
	b.pageSize = 2
	var all []string
	for _, k := range []string{"a", "b/1", "b/2", "c", "d/x/1", "e", "f", "g/1", "h", "i/", "i/j", "k"} {
		put(t, b, k, "v")
		all = append(all, k)
	}
	want := []string{"a", "P:b/", "c", "P:d/", "e", "f", "P:g/", "h", "P:i/", "k"}
	if got := keys(t, b.ListDir(t.Context(), "")); !slices.Equal(got, want) {
		t.Errorf("ListDir(\"\") =\n %q\nwant\n %q", got, want)
	}
	if got := keys(t, b.ListDir(t.Context(), "i/")); !slices.Equal(got, []string{"i/", "i/j"}) {
		t.Errorf("ListDir(\"i/\") = %q", got)
	}
	if got := keys(t, b.List(t.Context(), "")); !slices.Equal(got, all) {
		t.Errorf("List(\"\") = %q, want %q", got, all)
	}
}

// TestEmulatorHost checks the STORAGE_EMULATOR_HOST path (no endpoint, no
// credentials) and the errors of a missing bucket.
func TestEmulatorHost(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", fake.Host)
	bucket := newBucket(t, false)
	var rt countingTransport
	b, err := New(t.Context(), Options{Bucket: bucket, HTTPClient: &http.Client{Transport: &rt}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := put(t, b, "k", "v"); got.Size != 1 || got.Version.ID == "" {
		t.Errorf("Put = %+v", got)
	}
	if got, _, err := read(t.Context(), b, "k", 0, -1, backends.Version{}); err != nil || got != "v" {
		t.Errorf("read = %q, %v", got, err)
	}
	if n := rt.n.Load(); n < 3 {
		t.Errorf("Options.HTTPClient carried %d requests, want all 3", n)
	}
	missing, err := New(t.Context(), Options{Bucket: bucket + "-missing"})
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	if _, err := missing.Put(t.Context(), "k", strings.NewReader("v"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrNoBucket) {
		t.Errorf("Put to a missing bucket: %v, want ErrNoBucket", err)
	}
	var lerr error
	for _, err := range missing.List(t.Context(), "") {
		lerr = err
	}
	if !errors.Is(lerr, backends.ErrNoBucket) {
		t.Errorf("List of a missing bucket: %v, want ErrNoBucket", lerr)
	}
}

// countingTransport counts the requests it carries.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// changingBody returns its data on the first full pass and the data with
// one byte flipped on every later pass, like a file modified while it is
// uploaded.
type changingBody struct {
	data   []byte
	off    int
	passes int
}

func (c *changingBody) Read(p []byte) (int, error) {
	if c.off >= len(c.data) {
		return 0, io.EOF
	}
	n := copy(p, c.data[c.off:])
	if c.passes > 0 && c.off == 0 {
		p[0] ^= 0xff
	}
	c.off += n
	return n, nil
}

func (c *changingBody) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekStart && !(whence == io.SeekCurrent && off == 0) {
		return 0, errors.New("unsupported seek")
	}
	if whence == io.SeekStart {
		if c.off > 0 {
			c.passes++
		}
		c.off = int(off)
	}
	return int64(c.off), nil
}

// TestPutBodyChanged checks that a body whose bytes change between the
// checksum pass and the upload pass is refused by the store (which
// verifies the declared checksums) and reported as ErrChecksum, leaving
// the key as it was.
func TestPutBodyChanged(t *testing.T) {
	b := open(t, newBucket(t, false))
	old := put(t, b, "k", "old")
	body := &changingBody{data: []byte("new content")}
	_, err := b.Put(t.Context(), "k", body, int64(len(body.data)), backends.PutOptions{})
	if !errors.Is(err, backends.ErrChecksum) {
		t.Fatalf("Put of a changing body: %v, want ErrChecksum", err)
	}
	if st, err := b.Stat(t.Context(), "k"); err != nil || st.Version != old.Version {
		t.Errorf("key after refused put: %+v, %v", st, err)
	}
}

// TestCompleteWrongParts checks that parts not as stored are refused
// before anything is composed.
func TestCompleteWrongParts(t *testing.T) {
	b := open(t, newBucket(t, false))
	u, parts := multipartUpload(t, b, "k", []byte("abc"), backends.PutOptions{})
	again, err := b.UploadPart(t.Context(), u, 2, strings.NewReader("B"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CompleteUpload(t.Context(), u, parts); !errors.Is(err, backends.ErrPrecondition) {
		t.Errorf("complete with a replaced part's old ETag: %v, want ErrPrecondition", err)
	}
	parts[1] = again
	missing := append(slices.Clone(parts), backends.Part{Number: 4, Size: 1})
	if _, err := b.CompleteUpload(t.Context(), u, missing); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("complete with a part never sent: %v, want ErrNotExist", err)
	}
	wrongKey := u
	wrongKey.Key = "other"
	if _, err := b.ListParts(t.Context(), wrongKey); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("ListParts with another key: %v, want ErrNotExist", err)
	}
	info, err := b.CompleteUpload(t.Context(), u, parts)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := read(t.Context(), b, "k", 0, -1, info.Version); err != nil || got != "aBc" {
		t.Errorf("completed object = %q, %v", got, err)
	}
}

func TestEndpointURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		plain    bool
	}{
		{"http://127.0.0.1:4443", "http://127.0.0.1:4443/storage/v1/", true},
		{"https://gcs.example.com/", "https://gcs.example.com/storage/v1/", false},
		{"https://gcs.example.com/custom/v1", "https://gcs.example.com/custom/v1/", false},
	} {
		got, plain, err := endpointURL(tc.in)
		if err != nil || got != tc.want || plain != tc.plain {
			t.Errorf("endpointURL(%q) = %q, %v, %v", tc.in, got, plain, err)
		}
	}
	for _, bad := range []string{"127.0.0.1:4443", "ftp://host/", "http://"} {
		if _, _, err := endpointURL(bad); err == nil {
			t.Errorf("endpointURL(%q) accepted", bad)
		}
	}
}

// TestPutResumable puts an object larger than one upload chunk, which goes
// as a resumable upload of several requests, and reads it back whole.
func TestPutResumable(t *testing.T) {
	b := open(t, newBucket(t, false))
	data := make([]byte, maxChunk+12345)
	for i := range data {
		data[i] = byte(i * 31 / 7)
	}
	info, err := b.Put(t.Context(), "big", bytes.NewReader(data), int64(len(data)), backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := crcBytes(crc32.Checksum(data, castagnoli)); info.Size != int64(len(data)) || !bytes.Equal(info.Checksums.CRC32C, want) {
		t.Errorf("Put = size %d crc32c %x, want %d %x", info.Size, info.Checksums.CRC32C, len(data), want)
	}
	got, _, err := read(t.Context(), b, "big", 0, -1, info.Version)
	if err != nil || got != string(data) {
		t.Errorf("read back %d bytes, %v", len(got), err)
	}
}
