package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ferryio/ferry/backends"
)

func readCases() []testCase {
	return []testCase{
		{"Read/Ranges", testRanges},
		{"Read/StatMissing", testStatMissing},
		{"Read/VersionPinned", testVersionPinned},
		{"Read/ExactCurrentOnly", testExactCurrentOnly},
		{"Read/ExactVersion", testExactVersion},
	}
}

// testRanges is the ranged-read table of the GetRange contract.
func testRanges(t *testing.T, s suite) {
	b := s.newStore(t)
	const size = 10_000
	data := pattern(size, 3)
	put(t, b, "r/obj", data, backends.PutOptions{})
	put(t, b, "r/zero", nil, backends.PutOptions{})
	st, err := b.Stat(t.Context(), "r/obj")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		key            string
		offset, length int64
		want           []byte
		err            error
	}{
		{"whole", "r/obj", 0, -1, data, nil},
		{"whole by length", "r/obj", 0, size, data, nil},
		{"middle", "r/obj", 1234, 4321, data[1234 : 1234+4321], nil},
		{"first byte", "r/obj", 0, 1, data[:1], nil},
		{"last byte", "r/obj", size - 1, 1, data[size-1:], nil},
		{"zero length", "r/obj", 100, 0, nil, nil},
		{"zero length at start", "r/obj", 0, 0, nil, nil},
		{"tail to end", "r/obj", 9000, -1, data[9000:], nil},
		{"exactly to the end", "r/obj", 9000, 1000, data[9000:], nil},
		{"past the end is cut", "r/obj", 9000, 5000, data[9000:], nil},
		{"offset == size", "r/obj", size, -1, nil, nil},
		{"offset == size, length", "r/obj", size, 10, nil, nil},
		{"offset > size", "r/obj", size + 1, -1, nil, backends.ErrInvalidRange},
		{"offset far beyond", "r/obj", 1 << 40, 10, nil, backends.ErrInvalidRange},
		{"zero-byte object whole", "r/zero", 0, -1, nil, nil},
		{"zero-byte object, length", "r/zero", 0, 10, nil, nil},
		{"zero-byte object, offset 1", "r/zero", 1, -1, nil, backends.ErrInvalidRange},
		{"missing key", "r/missing", 0, -1, nil, backends.ErrNotExist},
		{"missing key, range", "r/missing", 5, 10, nil, backends.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, info, err := tryRead(t.Context(), b, tc.key, tc.offset, tc.length, backends.ReadOptions{})
			if tc.err != nil {
				wantKind(t, "GetRange", err, tc.err)
				return
			}
			if err != nil {
				t.Fatalf("GetRange(%q, %d, %d): %v", tc.key, tc.offset, tc.length, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("GetRange(%q, %d, %d) = %d bytes, want %d bytes (equal content: %v)",
					tc.key, tc.offset, tc.length, len(got), len(tc.want), bytes.Equal(got, tc.want))
			}
			if tc.key == "r/obj" {
				// The info describes the whole object, not the range.
				if info.Size != size {
					t.Errorf("info.Size = %d, want the whole size %d", info.Size, size)
				}
				if info.Version != st.Version {
					t.Errorf("info.Version = %v, Stat says %v", info.Version, st.Version)
				}
			}
			if info.Key != tc.key {
				t.Errorf("info.Key = %q, want %q", info.Key, tc.key)
			}
		})
	}
}

func testStatMissing(t *testing.T, s suite) {
	b := s.newStore(t)
	put(t, b, "here/file", []byte("x"), backends.PutOptions{})
	for _, key := range []string{"missing", "here/missing", "here", "here/", "here/file/below"} {
		_, err := b.Stat(t.Context(), key)
		wantKind(t, "Stat("+key+")", err, backends.ErrNotExist)
		var be *backends.Error
		errors.As(err, &be)
		if be.Key != key {
			t.Errorf("Stat(%q) error names key %q, want the caller's key", key, be.Key)
		}
	}
	info, err := b.Stat(t.Context(), "here/file")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "here/file" || info.Size != 1 || info.Version.IsZero() || info.ModTime.IsZero() {
		t.Fatalf("Stat(here/file) = %+v, want key, size 1, a version and a time", info)
	}
}

// testVersionPinned checks Version equality and ReadOptions.IfVersion.
func testVersionPinned(t *testing.T, s suite) {
	b := s.newStore(t)
	ctx := t.Context()
	v1 := pattern(5000, 1)
	put1 := put(t, b, "v/obj", v1, backends.PutOptions{})
	st1, err := b.Stat(ctx, "v/obj")
	if err != nil {
		t.Fatal(err)
	}
	st1b, err := b.Stat(ctx, "v/obj")
	if err != nil {
		t.Fatal(err)
	}
	if st1.Version.IsZero() {
		t.Fatal("Stat returned a zero Version")
	}
	if st1.Version != st1b.Version {
		t.Fatalf("two Stats of the same content: versions %v and %v differ", st1.Version, st1b.Version)
	}
	if put1.Version != st1.Version {
		t.Fatalf("Put returned version %v, Stat says %v", put1.Version, st1.Version)
	}
	pin := backends.ReadOptions{IfVersion: st1.Version}
	got, info := readRange(t, b, "v/obj", 100, 200, pin)
	if !bytes.Equal(got, v1[100:300]) || info.Version != st1.Version {
		t.Fatalf("pinned read of the unchanged object: %d bytes, version %v", len(got), info.Version)
	}

	// Replace with content of the same size: the version must change all
	// the same, and the pinned read must fail rather than mix versions.
	v2 := pattern(5000, 2)
	put(t, b, "v/obj", v2, backends.PutOptions{})
	st2, err := b.Stat(ctx, "v/obj")
	if err != nil {
		t.Fatal(err)
	}
	if st2.Version == st1.Version {
		t.Fatalf("version %v unchanged after the object was replaced", st2.Version)
	}
	_, _, err = tryRead(ctx, b, "v/obj", 0, -1, pin)
	wantKind(t, "GetRange pinned to a replaced version", err, backends.ErrPrecondition)
	_, _, err = tryRead(ctx, b, "v/obj", 0, 10, pin)
	wantKind(t, "ranged GetRange pinned to a replaced version", err, backends.ErrPrecondition)
	got, _ = readRange(t, b, "v/obj", 0, -1, backends.ReadOptions{IfVersion: st2.Version})
	if !bytes.Equal(got, v2) {
		t.Fatal("pinned read of the current version returned other bytes")
	}

	// Deleted since pinned: either sentinel tells the caller the truth.
	if err := b.Delete(ctx, "v/obj"); err != nil {
		t.Fatal(err)
	}
	_, _, err = tryRead(ctx, b, "v/obj", 0, -1, backends.ReadOptions{IfVersion: st2.Version})
	if !errors.Is(err, backends.ErrPrecondition) && !errors.Is(err, backends.ErrNotExist) {
		t.Fatalf("GetRange pinned to a deleted object: %v, want ErrPrecondition or ErrNotExist", err)
	}
}

// testExactCurrentOnly checks ReadOptions.Exact on a bucket as open gives
// it, which keeps no old versions (see Run): the current version reads as
// it does without Exact, and a replaced version fails with ErrPrecondition,
// whether the store has version ids (s3 has none on such a bucket, gcs
// has generations) or ignores Exact (az, local: pinned by ETag).
func testExactCurrentOnly(t *testing.T, s suite) {
	b := s.newStore(t)
	ctx := t.Context()
	v1, v2 := pattern(3000, 5), pattern(3000, 6)
	put(t, b, "e/obj", v1, backends.PutOptions{})
	st1, err := b.Stat(ctx, "e/obj")
	if err != nil {
		t.Fatal(err)
	}
	put(t, b, "e/obj", v2, backends.PutOptions{})
	st2, err := b.Stat(ctx, "e/obj")
	if err != nil {
		t.Fatal(err)
	}
	got, info := readRange(t, b, "e/obj", 0, -1, backends.ReadOptions{IfVersion: st2.Version, Exact: true})
	if !bytes.Equal(got, v2) || info.Version != st2.Version {
		t.Fatalf("Exact read of the current version: %d bytes (want v2: %v), version %v, Stat says %v",
			len(got), bytes.Equal(got, v2), info.Version, st2.Version)
	}
	got, _ = readRange(t, b, "e/obj", 10, 20, backends.ReadOptions{Exact: true})
	if !bytes.Equal(got, v2[10:30]) {
		t.Fatal("Exact without IfVersion did not read the current bytes")
	}
	_, _, err = tryRead(ctx, b, "e/obj", 0, -1, backends.ReadOptions{IfVersion: st1.Version, Exact: true})
	wantKind(t, "Exact read of a replaced version on a store that keeps no old versions", err, backends.ErrPrecondition)
	_, _, err = tryRead(ctx, b, "e/obj", 0, 0, backends.ReadOptions{IfVersion: st1.Version, Exact: true})
	wantKind(t, "zero-length Exact read of a replaced version", err, backends.ErrPrecondition)
}

// testExactVersion checks ReadOptions.Exact on a bucket that keeps old
// versions (Caps.OpenVersioned): a replaced version reads with its own
// bytes and attributes, whole, ranged and empty, and so does the current
// one; without Exact the same pin fails; an id that is not this key's and
// a key that never existed fail with ErrPrecondition; versions survive the
// object's deletion.
func testExactVersion(t *testing.T, s suite) {
	if s.caps.OpenVersioned == nil {
		t.Skip("the store keeps no old versions (Caps.OpenVersioned is nil)")
	}
	b := s.newVersionedStore(t)
	ctx := t.Context()
	const size = 5000
	v1, v2 := pattern(size, 7), pattern(size, 8)
	stat := func(key string) backends.ObjectInfo {
		t.Helper()
		st, err := b.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	put(t, b, "x/obj", v1, backends.PutOptions{Metadata: map[string]string{"which": "one"}})
	st1 := stat("x/obj")
	put(t, b, "x/obj", v2, backends.PutOptions{Metadata: map[string]string{"which": "two"}})
	st2 := stat("x/obj")
	if st1.Version.ID == "" || st2.Version.ID == "" || st1.Version.ID == st2.Version.ID {
		t.Fatalf("versions %v and %v: a store that keeps versions must give each its own ID", st1.Version, st2.Version)
	}
	exact := func(v backends.Version) backends.ReadOptions { return backends.ReadOptions{IfVersion: v, Exact: true} }
	check := func(what string, v backends.Version, want []byte, meta string) {
		t.Helper()
		got, info := readRange(t, b, "x/obj", 0, -1, exact(v))
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: whole read returned %d other bytes", what, len(got))
		}
		if info.Key != "x/obj" || info.Size != size || info.Version.ID != v.ID || info.Metadata["which"] != meta {
			t.Fatalf("%s: info %+v, want key x/obj, size %d, version id %s, metadata which=%s", what, info, size, v.ID, meta)
		}
		if got, info = readRange(t, b, "x/obj", 1000, 2000, exact(v)); !bytes.Equal(got, want[1000:3000]) || info.Size != size {
			t.Fatalf("%s: ranged read returned %d bytes (right ones: %v), info.Size %d", what, len(got), bytes.Equal(got, want[1000:3000]), info.Size)
		}
		if got, info = readRange(t, b, "x/obj", 0, 0, exact(v)); len(got) != 0 || info.Size != size || info.Version.ID != v.ID {
			t.Fatalf("%s: zero-length read: %d bytes, info %+v", what, len(got), info)
		}
		if got, _ = readRange(t, b, "x/obj", size, -1, exact(v)); len(got) != 0 {
			t.Fatalf("%s: read at the end returned %d bytes", what, len(got))
		}
		_, _, err := tryRead(ctx, b, "x/obj", size+1, -1, exact(v))
		wantKind(t, what+": read beyond the end", err, backends.ErrInvalidRange)
	}
	check("replaced version by its ID", backends.Version{ID: st1.Version.ID}, v1, "one")
	check("replaced version by its whole Version", st1.Version, v1, "one")
	check("current version", st2.Version, v2, "two")

	// Only Exact reaches a version that is not current.
	_, _, err := tryRead(ctx, b, "x/obj", 0, -1, backends.ReadOptions{IfVersion: st1.Version})
	wantKind(t, "read pinned to the replaced version without Exact", err, backends.ErrPrecondition)
	if got, _ := readRange(t, b, "x/obj", 0, -1, backends.ReadOptions{Exact: true}); !bytes.Equal(got, v2) {
		t.Fatal("Exact without IfVersion did not read the current bytes")
	}

	// Versions the key does not have: another key's, and any on a key that
	// never existed.
	put(t, b, "x/other", []byte("other"), backends.PutOptions{})
	other := stat("x/other")
	for _, n := range []int64{-1, 10, 0} {
		_, _, err = tryRead(ctx, b, "x/obj", 0, n, exact(backends.Version{ID: other.Version.ID}))
		wantKind(t, fmt.Sprintf("Exact read (0, %d) of another key's version id", n), err, backends.ErrPrecondition)
		_, _, err = tryRead(ctx, b, "x/never", 0, n, exact(st1.Version))
		wantKind(t, fmt.Sprintf("Exact read (0, %d) of a key that never existed", n), err, backends.ErrPrecondition)
	}

	// Deleting the object keeps its versions on such a bucket.
	if err := b.Delete(ctx, "x/obj"); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, b, "x/obj")
	if got, _ := readRange(t, b, "x/obj", 0, -1, exact(st1.Version)); !bytes.Equal(got, v1) {
		t.Fatal("Exact read of a version of a deleted object returned other bytes")
	}
	if got, _ := readRange(t, b, "x/obj", 0, -1, exact(st2.Version)); !bytes.Equal(got, v2) {
		t.Fatal("Exact read of the last version of a deleted object returned other bytes")
	}
}

// emptyReader is a body of zero bytes.
func emptyReader() *bytes.Reader { return bytes.NewReader(nil) }

// cancelled returns a context that is already cancelled.
func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}
