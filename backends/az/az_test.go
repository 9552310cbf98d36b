package az_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/az"
	"github.com/ferryio/ferry/backends/backendtest"
	"github.com/ferryio/ferry/integration/testenv"
)

var srv *testenv.Azurite

func TestMain(m *testing.M) {
	testenv.Main(m, func(e *testenv.Env) (err error) {
		srv, err = e.Azurite()
		return err
	})
}

// newContainer creates a fresh container, deleted when the test ends.
func newContainer(t *testing.T) string {
	t.Helper()
	name := testenv.BucketName(t)
	if err := srv.CreateContainer(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := azblob.NewClientFromConnectionString(srv.ConnectionString, nil)
		if err == nil {
			_, _ = c.DeleteContainer(context.Background(), name, nil)
		}
	})
	return name
}

// open returns a backend over container with opts' other fields set.
func open(t *testing.T, container string, opts az.Options) *az.Backend {
	t.Helper()
	opts.Container = container
	if opts.ConnectionString == "" && opts.AccountURL == "" {
		opts.ConnectionString = srv.ConnectionString
	}
	b, err := az.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return open(t, newContainer(t), az.Options{})
	}, backendtest.Caps{
		RawKeys:         true,
		NoUploadListing: true,
		Reopen: func(t *testing.T, b backends.Backend) backends.Backend {
			return open(t, strings.TrimPrefix(b.String(), "az://"), az.Options{})
		},
	})
}

// rawClient is an SDK client of container, to look behind the driver.
func rawClient(t *testing.T, name string) *container.Client {
	t.Helper()
	c, err := container.NewClientFromConnectionString(srv.ConnectionString, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keys(t *testing.T, seq iter.Seq2[backends.Entry, error]) []string {
	t.Helper()
	var out []string
	for e, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		if e.IsPrefix {
			out = append(out, "P:"+e.Key)
		} else {
			out = append(out, e.Key)
		}
	}
	return out
}

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	var be *backends.Error
	if !errors.Is(err, kind) || !errors.As(err, &be) {
		t.Fatalf("%s: %v, want a *backends.Error matching %v", what, err, kind)
	}
}

func TestMetadataEncodingRoundTrip(t *testing.T) {
	name := newContainer(t)
	b := open(t, name, az.Options{})
	md := map[string]string{
		"mtime": "1700000000.5", "mode": "0644", "x-foo": "dash", "_under": "u",
		"9lives": "digit", "dots.and-dashes": "d", "Upper": "case kept",
	}
	if _, err := b.Put(t.Context(), "m", strings.NewReader("x"), 1, backends.PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	st, err := b.Stat(t.Context(), "m")
	if err != nil {
		t.Fatal(err)
	}
	rc, got, err := b.GetRange(t.Context(), "m", 0, -1, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	var listed backends.ObjectInfo
	for e, err := range b.List(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		listed = e.ObjectInfo
	}
	for what, m := range map[string]map[string]string{"Stat": st.Metadata, "GetRange": got.Metadata, "List": listed.Metadata} {
		if !maps.Equal(m, md) {
			t.Errorf("%s metadata = %v, want %v", what, m, md)
		}
	}
	// What the service holds are identifiers; "mtime" and "mode" as is.
	p, err := rawClient(t, name).NewBlobClient("m").GetProperties(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ident := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	var names []string
	for n := range p.Metadata {
		n = strings.ToLower(n)
		names = append(names, n)
		if !ident.MatchString(n) {
			t.Errorf("stored metadata name %q is not an identifier", n)
		}
	}
	if !slices.Contains(names, "mtime") || !slices.Contains(names, "x_2dfoo") {
		t.Errorf("stored names %q, want mtime and x_2dfoo among them", names)
	}
	// Metadata set by another tool reads lower-cased.
	v := "other"
	if _, err := rawClient(t, name).NewBlobClient("m").SetMetadata(t.Context(), map[string]*string{"Their_Key": &v}, nil); err != nil {
		t.Fatal(err)
	}
	if st, err = b.Stat(t.Context(), "m"); err != nil || !maps.Equal(st.Metadata, map[string]string{"their_key": "other"}) {
		t.Errorf("foreign metadata reads as %v, %v", st.Metadata, err)
	}
}

// TestListByteOrder stores names that UTF-16 order (Azurite's) sorts
// unlike byte order.
func TestListByteOrder(t *testing.T) {
	b := open(t, newContainer(t), az.Options{})
	names := []string{"a\uff01", "a\U0001F600", "a\ue000", "a\U0001F600/x", "d/\U0001F600/1", "d/\ue000/2", "d/\ufffd", "d/z", "b"}
	for _, k := range names {
		if _, err := b.Put(t.Context(), k, strings.NewReader(k), int64(len(k)), backends.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := keys(t, b.List(t.Context(), "")), slices.Sorted(slices.Values(names)); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	if got, want := keys(t, b.ListDir(t.Context(), "d/")), []string{"d/z", "P:d/\ue000/", "d/\ufffd", "P:d/\U0001F600/"}; !slices.Equal(got, want) {
		t.Errorf("ListDir(d/) = %q, want %q", got, want)
	}
	if got, want := keys(t, b.ListDir(t.Context(), "")), []string{"a\ue000", "a\uff01", "a\U0001F600", "P:a\U0001F600/", "b", "P:d/"}; !slices.Equal(got, want) {
		t.Errorf("ListDir(\"\") = %q, want %q", got, want)
	}
}

// seekOnly hides io.ReaderAt, so that Put stages blocks one at a time.
type seekOnly struct{ r io.ReadSeeker }

func (s seekOnly) Read(p []byte) (int, error)                { return s.r.Read(p) }
func (s seekOnly) Seek(off int64, whence int) (int64, error) { return s.r.Seek(off, whence) }
func committedIDs(t *testing.T, c *container.Client, key string) []string {
	t.Helper()
	list, err := c.NewBlockBlobClient(key).GetBlockList(t.Context(), blockblob.BlockListTypeAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, blk := range list.CommittedBlocks {
		ids = append(ids, *blk.Name)
	}
	return ids
}

func TestLargePutViaBlocks(t *testing.T) {
	name := newContainer(t)
	b := open(t, name, az.Options{BlockSize: 1000})
	data := make([]byte, 10_600)
	for i := range data {
		data[i] = byte(i * 7)
	}
	body := data[100:] // Put reads from the body's current position
	sum := md5.Sum(body)
	for what, r := range map[string]io.ReadSeeker{"readerat": bytes.NewReader(data), "seekonly": seekOnly{bytes.NewReader(data)}} {
		key := "big/" + what
		if _, err := r.Seek(100, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		info, err := b.Put(t.Context(), key, r, int64(len(body)), backends.PutOptions{Checksums: backends.Checksums{MD5: sum[:]}})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if info.Size != int64(len(body)) || !bytes.Equal(info.Checksums.MD5, sum[:]) {
			t.Errorf("%s: Put returned %+v", what, info)
		}
		ids := committedIDs(t, rawClient(t, name), key)
		if len(ids) != 11 {
			t.Errorf("%s: %d committed blocks, want 11", what, len(ids))
		}
		for _, id := range ids {
			if len(id) != len(ids[0]) {
				t.Errorf("%s: block IDs of unequal length: %q", what, ids)
			}
		}
		rc, got, err := b.GetRange(t.Context(), key, 0, -1, backends.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		read, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(read, body) || !bytes.Equal(got.Checksums.MD5, sum[:]) {
			t.Errorf("%s: read back %d bytes (equal %v), MD5 %x, err %v", what, len(read), bytes.Equal(read, body), got.Checksums.MD5, err)
		}
	}
	// A wrong checksum fails before anything is staged or committed.
	_, err := b.Put(t.Context(), "big/wrong", bytes.NewReader(body), int64(len(body)), backends.PutOptions{Checksums: backends.Checksums{CRC32C: []byte{1, 2, 3, 4}}})
	wantKind(t, "Put with a wrong CRC32C", err, backends.ErrChecksum)
	// Cancelled while staging (after the checksum pass): nothing visible.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err = b.Put(ctx, "big/cancelled", &cancelAfter{r: bytes.NewReader(body), n: int64(len(body)) + 3000, cancel: cancel}, int64(len(body)), backends.PutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put cancelled while staging: %v, want context.Canceled", err)
	}
	if got := keys(t, b.List(t.Context(), "big/")); !slices.Equal(got, []string{"big/readerat", "big/seekonly"}) {
		t.Errorf("List(big/) = %q, want only the two whole puts", got)
	}
}

// cancelAfter cancels once n bytes were read in total (across seeks).
type cancelAfter struct {
	r      *bytes.Reader
	n      int64
	read   int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	k, err := c.r.Read(p[:min(len(p), 500)])
	if c.read += int64(k); c.read >= c.n {
		c.cancel()
	}
	return k, err
}

func (c *cancelAfter) Seek(off int64, whence int) (int64, error) { return c.r.Seek(off, whence) }

func part(t *testing.T, mp backends.Multipart, u backends.Upload, n int, data []byte) backends.Part {
	t.Helper()
	p, err := mp.UploadPart(t.Context(), u, n, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("UploadPart(%d): %v", n, err)
	}
	return p
}

func wantNothing(t *testing.T, b backends.Backend, key string) {
	t.Helper()
	if got := keys(t, b.List(t.Context(), "")); len(got) != 0 {
		t.Fatalf("List = %q, want nothing", got)
	}
	_, err := b.Stat(t.Context(), key)
	wantKind(t, "Stat", err, backends.ErrNotExist)
}

// TestMultipartBlocks checks the upload lifecycle on the store: a known but
// empty upload, block IDs of equal length across clients, empty parts,
// ListParts after Complete and after Abort.
func TestMultipartBlocks(t *testing.T) {
	name := newContainer(t)
	b1 := open(t, name, az.Options{})
	ctx := t.Context()
	const key = "mp/obj"
	u, err := b1.CreateUpload(ctx, key, backends.PutOptions{ContentType: "text/x-parts", Metadata: map[string]string{"x-src": "mp"}})
	if err != nil {
		t.Fatal(err)
	}
	if parts, err := b1.ListParts(ctx, u); err != nil || len(parts) != 0 {
		t.Fatalf("ListParts of a new upload = %v, %v; want none and no error", parts, err)
	}
	p2 := part(t, b1, u, 2, []byte("-second"))
	b2 := open(t, name, az.Options{}) // a new process resumes
	p1 := part(t, b2, u, 1, []byte("first"))
	p3 := part(t, b2, u, 3, nil) // empty last part
	wantNothing(t, b1, key)
	list, err := rawClient(t, name).NewBlockBlobClient(key).GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, blk := range list.UncommittedBlocks {
		ids = append(ids, *blk.Name)
		if raw, err := base64.StdEncoding.DecodeString(*blk.Name); err != nil || !strings.HasPrefix(string(raw), u.ID) || len(*blk.Name) != len(ids[0]) {
			t.Errorf("block ID %q (raw %q): want base64 of the upload ID and a suffix, all of one length", *blk.Name, raw)
		}
	}
	if len(ids) != 3 { // the marker, parts 1 and 2
		t.Errorf("uncommitted blocks %q, want 3", ids)
	}
	parts, err := b2.ListParts(ctx, u)
	if want := []backends.Part{{Number: 1, Size: 5}, {Number: 2, Size: 7}}; err != nil || !slices.EqualFunc(parts, want, func(a, b backends.Part) bool {
		return a.Number == b.Number && a.Size == b.Size
	}) {
		t.Fatalf("ListParts = %+v, %v; want %+v", parts, err, want)
	}
	// Parts carrying their CRC32C let the whole CRC32C be checked before
	// the commit.
	whole := []byte("first-second")
	u.Options.Checksums = sumsOf(whole)
	info, err := b2.CompleteUpload(ctx, u, []backends.Part{p1, p2, p3})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(whole)) || info.ContentType != "text/x-parts" {
		t.Errorf("CompleteUpload returned %+v", info)
	}
	rc, got, err := b1.GetRange(ctx, key, 0, -1, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != string(whole) || !bytes.Equal(got.Checksums.MD5, u.Options.Checksums.MD5) || got.Metadata["x-src"] != "mp" {
		t.Errorf("completed object %q, info %+v", data, got)
	}
	_, err = b1.ListParts(ctx, u)
	wantKind(t, "ListParts after Complete", err, backends.ErrNotExist)
	_, err = b1.CompleteUpload(ctx, u, []backends.Part{p1, p2})
	wantKind(t, "CompleteUpload again", err, backends.ErrNotExist)

	// Unknown uploads, malformed or not.
	for _, id := range []string{"0123456789abcdef", "nonsense"} {
		_, err = b1.ListParts(ctx, backends.Upload{Key: key, ID: id})
		wantKind(t, "ListParts of upload "+id, err, backends.ErrNotExist)
		if err := b1.AbortUpload(ctx, backends.Upload{Key: "mp/other", ID: id}); err != nil {
			t.Errorf("AbortUpload of unknown upload %s: %v", id, err)
		}
	}

	// Abort makes the upload unknown; a late Complete fails; nothing shows.
	u2, err := b1.CreateUpload(ctx, "mp/aborted", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q1 := part(t, b1, u2, 1, []byte("data"))
	if err := b2.AbortUpload(ctx, u2); err != nil {
		t.Fatal(err)
	}
	_, err = b1.ListParts(ctx, u2)
	wantKind(t, "ListParts after Abort", err, backends.ErrNotExist)
	_, err = b1.CompleteUpload(ctx, u2, []backends.Part{q1})
	wantKind(t, "CompleteUpload after Abort", err, backends.ErrNotExist)
	_, err = b1.Stat(ctx, "mp/aborted")
	wantKind(t, "Stat after Abort", err, backends.ErrNotExist)
	// Completing one upload ends the others on the same key (a commit
	// discards every uncommitted block): ListParts tells their uploader.
	u3, err := b1.CreateUpload(ctx, "mp/twice", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part(t, b1, u3, 1, []byte("lost"))
	u4, err := b2.CreateUpload(ctx, "mp/twice", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.CompleteUpload(ctx, u4, []backends.Part{part(t, b2, u4, 1, []byte("won"))}); err != nil {
		t.Fatal(err)
	}
	_, err = b1.ListParts(ctx, u3)
	wantKind(t, "ListParts after another upload completed on the key", err, backends.ErrNotExist)
}

func sumsOf(data []byte) backends.Checksums {
	m := md5.Sum(data)
	c := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	return backends.Checksums{MD5: m[:], CRC32C: binary.BigEndian.AppendUint32(nil, c)}
}

// TestMultipartWholeChecksum covers both ways CompleteUpload verifies:
// combining part CRC32Cs before the commit, and reading back after it.
func TestMultipartWholeChecksum(t *testing.T) {
	b := open(t, newContainer(t), az.Options{})
	ctx := t.Context()
	whole := []byte("hello, parts")
	right, other := sumsOf(whole), sumsOf([]byte("other"))
	tests := []struct {
		name      string
		sums      backends.Checksums
		fromList  bool // parts as ListParts returns them: no CRC32C
		wantError bool
	}{
		{"right CRC32C from parts", backends.Checksums{CRC32C: right.CRC32C}, false, false},
		{"right CRC32C read back", backends.Checksums{CRC32C: right.CRC32C}, true, false},
		{"right MD5 read back", backends.Checksums{MD5: right.MD5}, true, false},
		{"wrong CRC32C from parts", backends.Checksums{CRC32C: other.CRC32C}, false, true},
		{"wrong CRC32C read back", backends.Checksums{CRC32C: other.CRC32C}, true, true},
		{"wrong MD5 read back", backends.Checksums{MD5: other.MD5}, false, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("wc/%d", i)
			u, err := b.CreateUpload(ctx, key, backends.PutOptions{Checksums: tc.sums})
			if err != nil {
				t.Fatal(err)
			}
			parts := []backends.Part{part(t, b, u, 1, whole[:5]), part(t, b, u, 2, whole[5:])}
			if tc.fromList {
				if parts, err = b.ListParts(ctx, u); err != nil {
					t.Fatal(err)
				}
			}
			info, err := b.CompleteUpload(ctx, u, parts)
			if tc.wantError {
				wantKind(t, "CompleteUpload", err, backends.ErrChecksum)
				_, err = b.Stat(ctx, key)
				wantKind(t, "Stat after a failed Complete", err, backends.ErrNotExist)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st, err := b.Stat(ctx, key)
			if err != nil || st.Version != info.Version || st.Size != int64(len(whole)) {
				t.Fatalf("Stat = %+v, %v; Complete said %+v", st, err, info)
			}
			if len(tc.sums.MD5) != 0 && !bytes.Equal(st.Checksums.MD5, right.MD5) {
				t.Errorf("stored MD5 %x, want %x", st.Checksums.MD5, right.MD5)
			}
		})
	}
}

// accountKey returns the account name and key of the Azurite connection
// string.
func accountKey(t *testing.T) (string, string) {
	t.Helper()
	var name, key string
	for _, kv := range strings.Split(srv.ConnectionString, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "AccountName":
			name = v
		case "AccountKey":
			key = v
		}
	}
	if name == "" || key == "" {
		t.Fatal("no account name and key in the Azurite connection string")
	}
	return name, key
}

func TestCredentials(t *testing.T) {
	name := newContainer(t)
	account, key := accountKey(t)
	t.Setenv(az.EnvConnectionString, "")
	t.Setenv(az.EnvAccount, "")
	t.Setenv(az.EnvKey, "")
	_, err := az.New(t.Context(), az.Options{Container: name})
	if !errors.Is(err, az.ErrNoCredentials) || !strings.Contains(err.Error(), "AZURE_STORAGE_CONNECTION_STRING") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("New without credentials: %v, want a one-line ErrNoCredentials naming the variable", err)
	}

	use := func(what string, opts az.Options) {
		t.Helper()
		opts.Container = name
		b, err := az.New(t.Context(), opts)
		if err != nil {
			t.Fatalf("%s: New: %v", what, err)
		}
		if _, err := b.Put(t.Context(), "cred/"+what, strings.NewReader("x"), 1, backends.PutOptions{}); err != nil {
			t.Fatalf("%s: Put: %v", what, err)
		}
		if strings.Contains(b.String(), key) {
			t.Fatalf("%s: String() holds the key", what)
		}
	}
	use("shared-key", az.Options{AccountName: account, AccountKey: key, AccountURL: srv.BlobEndpoint})
	svc, err := service.NewClientFromConnectionString(srv.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	sasURL, err := svc.GetSASURL(sas.AccountResourceTypes{Container: true, Object: true},
		sas.AccountPermissions{Read: true, Write: true, Create: true, List: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	use("sas-url", az.Options{AccountURL: sasURL})
	// A request the SAS does not allow is ErrPermission, and its error
	// does not quote the signed URL.
	readOnly, err := svc.GetSASURL(sas.AccountResourceTypes{Container: true, Object: true},
		sas.AccountPermissions{Read: true, List: true}, time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := az.New(t.Context(), az.Options{AccountURL: readOnly, Container: name})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ro.Put(t.Context(), "cred/denied", strings.NewReader("x"), 1, backends.PutOptions{})
	wantKind(t, "Put through a read-only SAS", err, backends.ErrPermission)
	if strings.Contains(err.Error(), "sig=") {
		t.Fatalf("the error quotes the signed URL: %v", err)
	}
	t.Setenv(az.EnvConnectionString, srv.ConnectionString)
	use("env", az.Options{})

	// A wrong key is ErrPermission, and no error repeats the key.
	wrong := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64))
	b, err := az.New(t.Context(), az.Options{Container: name, ConnectionString: strings.Replace(srv.ConnectionString, key, wrong, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Stat(t.Context(), "cred/env")
	wantKind(t, "Stat with a wrong key", err, backends.ErrPermission)
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), key) {
		t.Fatal("the error repeats the account key")
	}
	_, err = az.New(t.Context(), az.Options{Container: name, ConnectionString: "AccountName=x;AccountKey=not base64!;"})
	if err == nil || strings.Contains(err.Error(), "not base64!") {
		t.Fatalf("New with a malformed key: %v, want an error without the key", err)
	}
}

func TestErrors(t *testing.T) {
	ctx := t.Context()
	missing := open(t, testenv.BucketName(t), az.Options{})
	_, err := missing.Stat(ctx, "k")
	wantKind(t, "Stat in a missing container", err, backends.ErrNoBucket)
	_, err = missing.Put(ctx, "k", strings.NewReader("x"), 1, backends.PutOptions{})
	wantKind(t, "Put in a missing container", err, backends.ErrNoBucket)
	for _, err := range missing.List(ctx, "") {
		wantKind(t, "List of a missing container", err, backends.ErrNoBucket)
	}

	b := open(t, newContainer(t), az.Options{})
	for _, key := range []string{"trailing.", "dir./", "back\\slash", "ctl\x01", ""} {
		_, err := b.Put(ctx, key, strings.NewReader("x"), 1, backends.PutOptions{})
		wantKind(t, fmt.Sprintf("Put(%q)", key), err, backends.ErrInvalidKey)
		_, err = b.CreateUpload(ctx, key, backends.PutOptions{})
		wantKind(t, fmt.Sprintf("CreateUpload(%q)", key), err, backends.ErrInvalidKey)
	}
	if got := keys(t, b.List(ctx, "")); len(got) != 0 {
		t.Fatalf("invalid keys left %q", got)
	}

	// A body whose context ends while it is read fails with
	// context.Canceled, not a transport error.
	data := bytes.Repeat([]byte("z"), 4<<20)
	if _, err := b.Put(ctx, "big", bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	rc, _, err := b.GetRange(rctx, "big", 0, -1, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(rc)
	var be *backends.Error
	if !errors.Is(err, context.Canceled) || !errors.As(err, &be) {
		t.Fatalf("reading after cancel: %v, want a *backends.Error matching context.Canceled", err)
	}
}
