package backendtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"maps"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
)

func writeCases() []testCase {
	return []testCase{
		{"Write/PutOverwriteDelete", testPutOverwriteDelete},
		{"Write/Checksums", testChecksums},
		{"Write/WrongChecksum", testWrongChecksum},
		{"Write/Metadata", testMetadata},
		{"Write/Cancelled", testCancelled},
		{"Write/CancelledMidBody", testCancelledMidBody},
		{"Write/ConcurrentReadWrite", testConcurrentReadWrite},
	}
}

func testPutOverwriteDelete(t *testing.T, s suite) {
	b := s.newStore(t)
	ctx := t.Context()
	wantEmpty(t, b)

	info := put(t, b, "w/obj", []byte("first"), backends.PutOptions{})
	if info.Key != "w/obj" || info.Size != 5 || info.Version.IsZero() {
		t.Fatalf("Put returned %+v, want key w/obj, size 5 and a version", info)
	}
	wantContent(t, b, "w/obj", []byte("first"))

	put(t, b, "w/obj", []byte("second, longer"), backends.PutOptions{})
	wantContent(t, b, "w/obj", []byte("second, longer"))
	put(t, b, "w/obj", []byte("3rd"), backends.PutOptions{})
	wantContent(t, b, "w/obj", []byte("3rd"))

	put(t, b, "w/empty", nil, backends.PutOptions{})
	wantContent(t, b, "w/empty", nil)

	if err := b.Delete(ctx, "w/obj"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantMissing(t, b, "w/obj")
	if err := b.Delete(ctx, "w/obj"); err != nil {
		t.Fatalf("Delete of a deleted key: %v, want nil", err)
	}
	if err := b.Delete(ctx, "never/was"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
	if err := b.Delete(ctx, "w/empty"); err != nil {
		t.Fatal(err)
	}
	wantEmpty(t, b)
}

// sums computes the checksums the stores report. Tests send only MD5 and
// CRC32C (Put's contract).
func sums(data []byte) backends.Checksums {
	m := md5.Sum(data)
	c := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	i := crc32.ChecksumIEEE(data)
	n := crc64.Checksum(data, crc64.MakeTable(0x9a6c9329ac4bc9b5)) // CRC-64/NVME, reflected
	return backends.Checksums{MD5: m[:], CRC32C: binary.BigEndian.AppendUint32(nil, c),
		CRC32: binary.BigEndian.AppendUint32(nil, i), CRC64NVME: binary.BigEndian.AppendUint64(nil, n)}
}

// sent keeps the checksums Put may be given: MD5 and CRC32C.
func sent(s backends.Checksums) backends.Checksums {
	return backends.Checksums{MD5: s.MD5, CRC32C: s.CRC32C}
}

// wantSums fails the test unless got's known checksums match data and at
// least one is known.
func wantSums(t *testing.T, what string, got backends.Checksums, data []byte) {
	t.Helper()
	want := sums(data)
	if got.IsZero() {
		t.Fatalf("%s: no checksum at all (want MD5 and/or CRC32C)", what)
	}
	if len(got.MD5) != 0 && !bytes.Equal(got.MD5, want.MD5) {
		t.Errorf("%s: MD5 %x, want %x", what, got.MD5, want.MD5)
	}
	if len(got.CRC32C) != 0 && !bytes.Equal(got.CRC32C, want.CRC32C) {
		t.Errorf("%s: CRC32C %x, want %x", what, got.CRC32C, want.CRC32C)
	}
	if len(got.CRC32) != 0 && !bytes.Equal(got.CRC32, want.CRC32) {
		t.Errorf("%s: CRC32 %x, want %x", what, got.CRC32, want.CRC32)
	}
	if len(got.CRC64NVME) != 0 && !bytes.Equal(got.CRC64NVME, want.CRC64NVME) {
		t.Errorf("%s: CRC64NVME %x, want %x", what, got.CRC64NVME, want.CRC64NVME)
	}
}

// Upload stores data at key of the store behind a driver by other means
// than the driver: the store's own client, as another program would
// upload it. name says how (for example "single-part, CRC64NVME").
type Upload struct {
	Name string
	Size int
	Put  func(t *testing.T, key string, data []byte)
}

// ForeignChecksums checks, for objects another client uploaded (each of
// uploads), that b reports checksums of the whole object through Stat and,
// where it reports any, GetRange, and that every one it reports is right
// (MD5, CRC32C, CRC32, CRC64NVME). It is the case Write/Checksums for the
// checksums the driver itself never sends, such as the CRC64NVME that S3
// and recent AWS SDKs add by default; drivers' tests call it with their
// store's client.
func ForeignChecksums(t *testing.T, b backends.Backend, uploads []Upload) {
	for i, u := range uploads {
		t.Run(u.Name, func(t *testing.T) {
			data := pattern(u.Size, byte(i))
			key := fmt.Sprintf("foreign/%d", i)
			u.Put(t, key, data)
			checkStored(t, b, key, data)
		})
	}
}

func testChecksums(t *testing.T, s suite) {
	b := s.newStore(t)
	for _, n := range []int{0, 1, 100_000} {
		data := pattern(n, 9)
		key := fmt.Sprintf("c/%d", n)
		// Sending the right checksums must be accepted.
		put(t, b, key, data, backends.PutOptions{Checksums: sent(sums(data))})
		checkStored(t, b, key, data)
	}
}

// checkStored checks the checksums that Stat, and GetRange when it gives
// any, report for key against data.
func checkStored(t *testing.T, b backends.Backend, key string, data []byte) {
	t.Helper()
	st, err := b.Stat(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	wantSums(t, "Stat("+key+")", st.Checksums, data)
	_, info := readAll(t, b, key)
	if !info.Checksums.IsZero() {
		wantSums(t, "GetRange("+key+") info", info.Checksums, data)
	}
}

// testWrongChecksum sends checksums of other bytes: the put must fail and
// leave the key as it was, whether it was missing or held an object.
func testWrongChecksum(t *testing.T, s suite) {
	b := s.newStore(t)
	data := pattern(20_000, 4)
	other := sums([]byte("other bytes"))
	right := sums(data)
	put(t, b, "wc/existing", []byte("old"), backends.PutOptions{})
	tests := []struct {
		name string
		sums backends.Checksums
	}{
		{"wrong MD5", backends.Checksums{MD5: other.MD5}},
		{"wrong CRC32C", backends.Checksums{CRC32C: other.CRC32C}},
		{"right MD5, wrong CRC32C", backends.Checksums{MD5: right.MD5, CRC32C: other.CRC32C}},
		{"wrong MD5, right CRC32C", backends.Checksums{MD5: other.MD5, CRC32C: right.CRC32C}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := backends.PutOptions{Checksums: tc.sums}
			_, err := b.Put(t.Context(), "wc/new", bytes.NewReader(data), int64(len(data)), opts)
			if err == nil {
				t.Fatal("Put with a wrong checksum succeeded")
			}
			var be *backends.Error
			if !errors.As(err, &be) {
				t.Fatalf("error %v (%T) is not a *backends.Error", err, err)
			}
			wantMissing(t, b, "wc/new")
			_, err = b.Put(t.Context(), "wc/existing", bytes.NewReader(data), int64(len(data)), opts)
			if err == nil {
				t.Fatal("Put with a wrong checksum over an object succeeded")
			}
			wantContent(t, b, "wc/existing", []byte("old"))
		})
	}
}

// testMetadata checks that content type and user metadata round-trip via
// Stat and GetRange, and are replaced, not merged, by an overwrite.
func testMetadata(t *testing.T, s suite) {
	b := s.newStore(t)
	meta := map[string]string{
		"mtime":      "1700000000.123456789",
		"mode":       "0644",
		"ferry-sha":  "abc123",
		"with-dash2": "a value with spaces",
	}
	opts := backends.PutOptions{ContentType: "application/x-ferry-test", Metadata: meta}
	for _, key := range []string{"m/obj", "m/dir/"} {
		var data []byte
		if key == "m/obj" {
			data = []byte("meta")
		}
		put(t, b, key, data, opts)
		st, err := b.Stat(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		_, got := readAll(t, b, key)
		for what, info := range map[string]backends.ObjectInfo{"Stat": st, "GetRange": got} {
			if info.ContentType != opts.ContentType {
				t.Errorf("%s(%q).ContentType = %q, want %q", what, key, info.ContentType, opts.ContentType)
			}
			if !maps.Equal(info.Metadata, meta) {
				t.Errorf("%s(%q).Metadata = %v, want %v", what, key, info.Metadata, meta)
			}
		}
	}
	// An overwrite replaces metadata.
	put(t, b, "m/obj", []byte("plain"), backends.PutOptions{Metadata: map[string]string{"mode": "0600"}})
	st, err := b.Stat(t.Context(), "m/obj")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"mode": "0600"}; !maps.Equal(st.Metadata, want) {
		t.Errorf("after overwrite, Metadata = %v, want %v", st.Metadata, want)
	}
}

// testCancelled checks that every call on a cancelled context returns an
// error matching context.Canceled and writes nothing.
func testCancelled(t *testing.T, s suite) {
	b := s.newStore(t)
	put(t, b, "x/obj", []byte("data"), backends.PutOptions{})
	ctx := cancelled(t)
	wantCanceled := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s on a cancelled context: %v, want context.Canceled", what, err)
		}
	}
	var listErr error
	for _, err := range b.List(ctx, "") {
		listErr = err
		if err != nil {
			break
		}
	}
	wantCanceled("List", listErr)
	listErr = nil
	for _, err := range b.ListDir(ctx, "") {
		listErr = err
		if err != nil {
			break
		}
	}
	wantCanceled("ListDir", listErr)
	_, err := b.Stat(ctx, "x/obj")
	wantCanceled("Stat", err)
	rc, _, err := b.GetRange(ctx, "x/obj", 0, -1, backends.ReadOptions{})
	if err == nil {
		// Some drivers only notice on the first Read.
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	wantCanceled("GetRange", err)
	_, err = b.Put(ctx, "x/new", bytes.NewReader([]byte("new")), 3, backends.PutOptions{})
	wantCanceled("Put", err)
	wantMissing(t, b, "x/new")
	_, err = b.Put(ctx, "x/obj", bytes.NewReader([]byte("new")), 3, backends.PutOptions{})
	wantCanceled("Put over an object", err)
	wantContent(t, b, "x/obj", []byte("data"))
}

// cancelReader cancels its context once half of its bytes were read, as a
// caller giving up in the middle of an upload does. It offers only Read and
// Seek, so that drivers cannot bypass Read through WriteTo or ReadAt.
type cancelReader struct {
	r      *bytes.Reader
	at     int64
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.r.Size()-int64(c.r.Len()) >= c.at {
		c.cancel()
	}
	if len(p) > 32<<10 {
		p = p[:32<<10] // small reads, so the cancel lands mid-body
	}
	return c.r.Read(p)
}

func (c *cancelReader) Seek(offset int64, whence int) (int64, error) {
	return c.r.Seek(offset, whence)
}

func testCancelledMidBody(t *testing.T, s suite) {
	b := s.newStore(t)
	data := pattern(2<<20, 5)
	put(t, b, "mid/existing", []byte("old"), backends.PutOptions{})
	for _, key := range []string{"mid/new", "mid/existing"} {
		ctx, cancel := context.WithCancel(t.Context())
		body := &cancelReader{r: bytes.NewReader(data), at: int64(len(data) / 2), cancel: cancel}
		_, err := b.Put(ctx, key, body, int64(len(data)), backends.PutOptions{})
		cancel()
		if err == nil {
			t.Fatalf("Put(%q) cancelled mid-body succeeded", key)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Put(%q) cancelled mid-body: %v, want context.Canceled", key, err)
		}
	}
	wantMissing(t, b, "mid/new")
	wantContent(t, b, "mid/existing", []byte("old"))
}

// testConcurrentReadWrite overwrites one key while readers read it whole:
// every read must return exactly one of the versions written, never a mix.
func testConcurrentReadWrite(t *testing.T, s suite) {
	b := s.newStore(t)
	const versions = 12
	bodies := make([][]byte, versions)
	for i := range bodies {
		// Versions differ in every byte and in size.
		bodies[i] = bytes.Repeat([]byte{byte('A' + i)}, 64<<10+i*1000)
	}
	put(t, b, "cc/obj", bodies[0], backends.PutOptions{})

	g, ctx := errgroup.WithContext(t.Context())
	var done atomic.Bool
	var reads atomic.Int64
	g.Go(func() error {
		defer done.Store(true)
		for _, body := range bodies[1:] {
			if _, err := b.Put(ctx, "cc/obj", bytes.NewReader(body), int64(len(body)), backends.PutOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
	for range 4 {
		g.Go(func() error {
			for n := 0; n < 3 || !done.Load(); n++ {
				got, info, err := tryRead(ctx, b, "cc/obj", 0, -1, backends.ReadOptions{})
				if err != nil {
					return fmt.Errorf("read during overwrites: %w", err)
				}
				reads.Add(1)
				if len(got) == 0 {
					return errors.New("read an empty object")
				}
				i := int(got[0] - 'A')
				if i < 0 || i >= versions || !bytes.Equal(got, bodies[i]) {
					return fmt.Errorf("read %d bytes starting %q: not one whole version", len(got), clip(got))
				}
				if info.Size != int64(len(got)) {
					return fmt.Errorf("info.Size %d but the body has %d bytes", info.Size, len(got))
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	wantContent(t, b, "cc/obj", bodies[versions-1])
	t.Logf("%d whole reads during %d overwrites", reads.Load(), versions-1)
}
