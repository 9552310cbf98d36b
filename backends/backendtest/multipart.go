package backendtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
)

func multipartCases() []testCase {
	return []testCase{
		{"Multipart/Resume", testMultipartResume},
		{"Multipart/Concurrent", testMultipartConcurrent},
		{"Multipart/Abort", testMultipartAbort},
		{"Multipart/WrongChecksum", testMultipartWrongChecksum},
	}
}

// multipart returns b's Multipart capability, or skips the test.
func multipart(t *testing.T, b backends.Backend) backends.Multipart {
	t.Helper()
	mp, ok := b.(backends.Multipart)
	if !ok {
		t.Skipf("%s does not implement backends.Multipart", b)
	}
	return mp
}

// partSize is the size of every part but the last: the store's minimum,
// but not so small that the test proves little.
func partSize(mp backends.Multipart) int {
	return int(max(mp.MinPartSize(), 64<<10))
}

func uploadPart(t *testing.T, mp backends.Multipart, u backends.Upload, n int, data []byte) backends.Part {
	t.Helper()
	p, err := mp.UploadPart(t.Context(), u, n, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("UploadPart(%d, %d bytes): %v", n, len(data), err)
	}
	if p.Number != n || p.Size != int64(len(data)) {
		t.Fatalf("UploadPart(%d) returned %+v, want number %d size %d", n, p, n, len(data))
	}
	return p
}

// roundTripJSON saves u as a process would and loads it back.
func roundTripJSON(t *testing.T, u backends.Upload) backends.Upload {
	t.Helper()
	buf, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	var back backends.Upload
	if err := json.Unmarshal(buf, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

// wantNoUpload fails unless ListParts says the upload is gone.
func wantNoUpload(t *testing.T, mp backends.Multipart, u backends.Upload, what string) {
	t.Helper()
	parts, err := mp.ListParts(t.Context(), u)
	if err == nil && len(parts) != 0 {
		t.Fatalf("ListParts after %s = %d parts, want ErrNotExist or none", what, len(parts))
	}
	if err != nil && !errors.Is(err, backends.ErrNotExist) {
		t.Fatalf("ListParts after %s: %v, want ErrNotExist", what, err)
	}
	for pending, err := range mp.ListUploads(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		if pending.ID == u.ID {
			t.Fatalf("ListUploads still shows the upload after %s", what)
		}
	}
}

// testMultipartResume uploads three parts out of order, resumes the upload
// from its JSON in a fresh client, replaces one part there and completes.
func testMultipartResume(t *testing.T, s suite) {
	st := s.newStore(t)
	mp := multipart(t, st.Backend)
	ctx := t.Context()
	ps := partSize(mp)
	chunks := [][]byte{pattern(ps, 1), pattern(ps, 2), pattern(ps/2+7, 3)}
	const key = "mp/dir/object.bin"
	opts := backends.PutOptions{
		ContentType: "application/x-ferry-parts",
		Metadata:    map[string]string{"mtime": "1700000000", "ferry-src": "parts"},
	}
	u, err := mp.CreateUpload(ctx, key, opts)
	if err != nil {
		t.Fatalf("CreateUpload: %v", err)
	}
	if u.Key != key || u.ID == "" || u.Started.IsZero() {
		t.Fatalf("CreateUpload returned %+v, want key %q, an ID and a start time", u, key)
	}
	sent := map[int]backends.Part{}
	for _, n := range []int{3, 1, 2} {
		sent[n] = uploadPart(t, mp, u, n, chunks[n-1])
	}

	// Nothing is visible at the key, nor any temporary object anywhere.
	wantMissing(t, st, key)
	wantEmpty(t, st)
	if got := listKeys(t, st.ListDir(ctx, "mp/")); len(got) != 0 {
		t.Fatalf("ListDir(mp/) during the upload = %q, want nothing", got)
	}

	// A new process finds the upload by listing, and resumes it from JSON.
	saved := roundTripJSON(t, u)
	fresh := st.reopen(t)
	mp2 := multipart(t, fresh)
	found := false
	for pending, err := range mp2.ListUploads(ctx, "mp/") {
		if err != nil {
			t.Fatalf("ListUploads: %v", err)
		}
		if pending.ID == u.ID {
			found = true
			if pending.Key != key {
				t.Errorf("ListUploads: upload key %q, want %q", pending.Key, key)
			}
		}
	}
	switch {
	case !found && !s.caps.NoUploadListing:
		t.Fatalf("ListUploads(mp/) does not show the pending upload %s", u.ID)
	case found && s.caps.NoUploadListing:
		t.Fatalf("ListUploads(mp/) shows upload %s but Caps.NoUploadListing says it cannot", u.ID)
	}
	for pending, err := range mp2.ListUploads(ctx, "other/") {
		if err != nil {
			t.Fatal(err)
		}
		if pending.ID == u.ID {
			t.Fatalf("ListUploads(other/) shows the upload of %q", pending.Key)
		}
	}
	parts, err := mp2.ListParts(ctx, saved)
	if err != nil {
		t.Fatalf("ListParts from a fresh client: %v", err)
	}
	if len(parts) != 3 {
		t.Fatalf("ListParts = %+v, want 3 parts", parts)
	}
	for i, p := range parts {
		if p.Number != i+1 || p.Size != int64(len(chunks[i])) {
			t.Fatalf("ListParts[%d] = %+v, want number %d size %d", i, p, i+1, len(chunks[i]))
		}
		if e := sent[p.Number].ETag; e != "" && p.ETag != "" && e != p.ETag {
			t.Errorf("part %d: UploadPart gave ETag %q, ListParts %q", p.Number, e, p.ETag)
		}
	}

	// Sending a number again replaces that part.
	chunks[1] = pattern(ps, 4)
	uploadPart(t, mp2, saved, 2, chunks[1])
	parts, err = mp2.ListParts(ctx, saved)
	if err != nil || len(parts) != 3 {
		t.Fatalf("ListParts after replacing part 2 = %+v, %v", parts, err)
	}
	wantMissing(t, fresh, key)

	info, err := mp2.CompleteUpload(ctx, saved, parts)
	if err != nil {
		t.Fatalf("CompleteUpload: %v", err)
	}
	whole := slices.Concat(chunks...)
	if info.Key != key || info.Size != int64(len(whole)) {
		t.Fatalf("CompleteUpload returned key %q size %d, want %q %d", info.Key, info.Size, key, len(whole))
	}
	wantContent(t, st, key, whole)
	stat, err := st.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if stat.ContentType != opts.ContentType || !maps.Equal(stat.Metadata, opts.Metadata) {
		t.Errorf("completed object: content type %q metadata %v, want %q %v",
			stat.ContentType, stat.Metadata, opts.ContentType, opts.Metadata)
	}
	if got := listKeys(t, st.List(ctx, "")); !slices.Equal(got, []string{key}) {
		t.Fatalf("List after Complete = %q, want only %q", got, key)
	}
	wantNoUpload(t, mp, u, "Complete")
}

// testMultipartConcurrent uploads parts concurrently and completes with
// the parts UploadPart returned and the right whole-object checksums.
func testMultipartConcurrent(t *testing.T, s suite) {
	st := s.newStore(t)
	mp := multipart(t, st.Backend)
	ctx := t.Context()
	ps := partSize(mp)
	chunks := [][]byte{pattern(ps, 5), pattern(ps, 6), pattern(ps, 7), pattern(100, 8)}
	whole := slices.Concat(chunks...)
	const key = "mpc/obj"
	u, err := mp.CreateUpload(ctx, key, backends.PutOptions{Checksums: sums(whole)})
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]backends.Part, len(chunks))
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range chunks {
		g.Go(func() error {
			p, err := mp.UploadPart(gctx, u, i+1, bytes.NewReader(c), int64(len(c)))
			parts[i] = p
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("concurrent UploadPart: %v", err)
	}
	info, err := mp.CompleteUpload(ctx, u, parts)
	if err != nil {
		t.Fatalf("CompleteUpload with the parts UploadPart returned: %v", err)
	}
	if info.Size != int64(len(whole)) {
		t.Errorf("CompleteUpload: size %d, want %d", info.Size, len(whole))
	}
	wantContent(t, st, key, whole)
	stat, err := st.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !stat.Checksums.IsZero() {
		// Stores keep no whole-object checksum of some multipart objects;
		// those they report must be right.
		wantSums(t, "Stat of a multipart object", stat.Checksums, whole)
	}
}

func testMultipartAbort(t *testing.T, s suite) {
	st := s.newStore(t)
	mp := multipart(t, st.Backend)
	ctx := t.Context()
	u, err := mp.CreateUpload(ctx, "ab/obj", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uploadPart(t, mp, u, 1, pattern(partSize(mp), 1))
	uploadPart(t, mp, u, 2, []byte("tail"))
	if err := mp.AbortUpload(ctx, u); err != nil {
		t.Fatalf("AbortUpload: %v", err)
	}
	wantMissing(t, st, "ab/obj")
	wantEmpty(t, st)
	wantNoUpload(t, mp, u, "Abort")
	if err := mp.AbortUpload(ctx, u); err != nil {
		t.Fatalf("AbortUpload of an aborted upload: %v, want nil", err)
	}
	_, err = mp.UploadPart(ctx, u, 3, bytes.NewReader([]byte("late")), 4)
	if err == nil {
		// Some stores accept a late part; it must still never show.
		wantMissing(t, st, "ab/obj")
	}
}

// testMultipartWrongChecksum completes an upload whose whole-object
// checksums in its options are those of other bytes: Complete must fail.
func testMultipartWrongChecksum(t *testing.T, s suite) {
	st := s.newStore(t)
	mp := multipart(t, st.Backend)
	ctx := t.Context()
	wrong := sums([]byte("other"))
	u, err := mp.CreateUpload(ctx, "wcs/obj", backends.PutOptions{Checksums: wrong})
	if err != nil {
		t.Fatal(err)
	}
	p1 := uploadPart(t, mp, u, 1, pattern(partSize(mp), 1))
	p2 := uploadPart(t, mp, u, 2, []byte("tail"))
	if _, err := mp.CompleteUpload(ctx, u, []backends.Part{p1, p2}); err == nil {
		t.Fatal("CompleteUpload with wrong whole-object checksums succeeded")
	}
	if err := mp.AbortUpload(ctx, u); err != nil {
		t.Fatalf("AbortUpload after a failed Complete: %v", err)
	}
}
