// Package backendtest is the conformance suite every backends.Backend driver
// runs from its own test file:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backends.Backend {
//			return newDriverOverFreshBucket(t)
//		}, backendtest.Caps{RawKeys: true})
//	}
//
// Run checks the contract written in package backends, case by case, as
// named subtests (List/Order, Read/Ranges, Multipart/Resume, ...), once on
// the backend itself ("direct") and once through prefix.New(b, "pfx/sub/")
// ("prefixed"), so that prefix handling is exercised on every store.
//
// The cases live in list.go, read.go, write.go, keys.go and multipart.go;
// this file holds the entry point and the helpers they share.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"testing"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/prefix"
)

// Prefix is the key prefix of the "prefixed" run.
const Prefix = "pfx/sub/"

// Caps describes what a store allows, so the suite knows which cases apply.
type Caps struct {
	// RawKeys: the store holds keys a filesystem cannot (".." segments, a
	// leading "/", empty segments "a//b", a single 1,000-byte segment).
	// Object stores: true. local: false (it must refuse them with
	// ErrInvalidKey and write nothing).
	RawKeys bool

	// Reopen, when set, returns a NEW client (a fresh backend value, as a
	// new process would build) for the same bucket as b, which open
	// returned. The multipart cases resume uploads through it to check that
	// an Upload saved as JSON is all a new process needs. nil reuses b.
	Reopen func(t *testing.T, b backends.Backend) backends.Backend

	// NoUploadListing: the store cannot list pending multipart uploads, so
	// ListUploads yields nothing (allowed by the Multipart contract; Azure
	// keeps uncommitted blocks per blob and expires them itself). The
	// resume case then finds its upload only through the saved JSON.
	NoUploadListing bool

	// OpenVersioned, when set, returns a backend over a fresh, empty
	// bucket that keeps old versions of replaced and deleted objects (a
	// versioned s3 bucket, a gcs bucket with object versioning), with its
	// own cleanup, like open. The case Read/ExactVersion needs it and is
	// skipped when it is nil (stores without version ids: az, local).
	OpenVersioned func(t *testing.T) backends.Backend
}

// Run runs the whole suite against backends made by open, which must return
// a backend over a fresh, empty bucket (or container, or directory) that
// keeps no old versions of replaced objects, each call, and register its
// own cleanup with t.Cleanup. Run runs every case
// twice: directly (subtest "direct") and through prefix.New(b, Prefix)
// (subtest "prefixed"). Cases run one after another; open (for
// Read/ExactVersion: Caps.OpenVersioned) is called once per case, from
// inside the case's subtest (t.Name() ends with the case name, e.g.
// "direct/List/Order"), never concurrently.
func Run(t *testing.T, open func(t *testing.T) backends.Backend, caps Caps) {
	t.Run("direct", func(t *testing.T) {
		runCases(t, suite{open: open, caps: caps})
	})
	t.Run("prefixed", func(t *testing.T) {
		runCases(t, suite{open: open, caps: caps, prefix: Prefix})
	})
}

// suite is one run of every case: how to get a fresh backend, seen through
// prefix when it is not empty.
type suite struct {
	open   func(t *testing.T) backends.Backend
	caps   Caps
	prefix string
}

// store is the backend under test in one case, with a way to get a second,
// independent client of the same bucket. Type assertions (Multipart) must
// be made on store.Backend, not on the store.
type store struct {
	backends.Backend
	reopen func(t *testing.T) backends.Backend
}

// newStore opens a fresh, empty bucket for one case.
func (s suite) newStore(t *testing.T) *store {
	t.Helper()
	raw := s.open(t)
	if raw == nil {
		t.Fatal("open returned a nil backend")
	}
	st := &store{Backend: prefix.New(raw, s.prefix)}
	st.reopen = func(t *testing.T) backends.Backend {
		if s.caps.Reopen == nil {
			return st.Backend
		}
		fresh := s.caps.Reopen(t, raw)
		if fresh == nil {
			t.Fatal("Caps.Reopen returned a nil backend")
		}
		return prefix.New(fresh, s.prefix)
	}
	return st
}

// newVersionedStore opens a fresh bucket that keeps old versions through
// Caps.OpenVersioned, which must be set, seen through the run's prefix.
func (s suite) newVersionedStore(t *testing.T) backends.Backend {
	t.Helper()
	raw := s.caps.OpenVersioned(t)
	if raw == nil {
		t.Fatal("Caps.OpenVersioned returned a nil backend")
	}
	return prefix.New(raw, s.prefix)
}

// testCase is one named case of the suite.
type testCase struct {
	name string
	run  func(t *testing.T, s suite)
}

func runCases(t *testing.T, s suite) {
	var cases []testCase
	cases = append(cases, listCases()...)
	cases = append(cases, readCases()...)
	cases = append(cases, writeCases()...)
	cases = append(cases, keyCases()...)
	cases = append(cases, multipartCases()...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, s) })
	}
}

// --- helpers shared by the cases ---

// put stores data at key with opts and fails the test on error.
func put(t *testing.T, b backends.Backend, key string, data []byte, opts backends.PutOptions) backends.ObjectInfo {
	t.Helper()
	info, err := b.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
	return info
}

// readAll reads the object at key whole and returns its bytes and info.
func readAll(t *testing.T, b backends.Backend, key string) ([]byte, backends.ObjectInfo) {
	t.Helper()
	return readRange(t, b, key, 0, -1, backends.ReadOptions{})
}

// readRange reads [offset, offset+length) of key and fails the test on error.
func readRange(t *testing.T, b backends.Backend, key string, offset, length int64, opts backends.ReadOptions) ([]byte, backends.ObjectInfo) {
	t.Helper()
	data, info, err := tryRead(t.Context(), b, key, offset, length, opts)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): %v", key, offset, length, err)
	}
	return data, info
}

// tryRead is GetRange plus reading the body to the end and closing it.
func tryRead(ctx context.Context, b backends.Backend, key string, offset, length int64, opts backends.ReadOptions) ([]byte, backends.ObjectInfo, error) {
	rc, info, err := b.GetRange(ctx, key, offset, length, opts)
	if err != nil {
		return nil, info, err
	}
	data, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return data, info, err
}

// listKeys collects the keys a List or ListDir sequence yields, in order.
// Prefix entries are reported as "P:"+key so that tests tell them from
// objects. An error ends the test.
func listKeys(t *testing.T, seq iter.Seq2[backends.Entry, error]) []string {
	t.Helper()
	var keys []string
	for e, err := range seq {
		if err != nil {
			t.Fatalf("listing failed after %d entries: %v", len(keys), err)
		}
		if e.IsPrefix {
			keys = append(keys, "P:"+e.Key)
		} else {
			keys = append(keys, e.Key)
		}
	}
	return keys
}

// wantKind fails the test unless err matches the sentinel kind and carries
// a *backends.Error.
func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got nil error, want %v", what, kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("%s: got error %v, want one matching %v", what, err, kind)
	}
	var be *backends.Error
	if !errors.As(err, &be) {
		t.Fatalf("%s: error %v (%T) is not a *backends.Error", what, err, err)
	}
}

// wantMissing fails the test unless key holds no object.
func wantMissing(t *testing.T, b backends.Backend, key string) {
	t.Helper()
	_, err := b.Stat(t.Context(), key)
	wantKind(t, fmt.Sprintf("Stat(%q) of a key that must not exist", key), err, backends.ErrNotExist)
}

// wantEmpty fails the test unless List("") shows no object at all.
func wantEmpty(t *testing.T, b backends.Backend) {
	t.Helper()
	if keys := listKeys(t, b.List(t.Context(), "")); len(keys) != 0 {
		t.Fatalf("List(\"\") = %q, want nothing", keys)
	}
}

// wantContent fails the test unless key holds exactly want.
func wantContent(t *testing.T, b backends.Backend, key string, want []byte) {
	t.Helper()
	got, info := readAll(t, b, key)
	if !bytes.Equal(got, want) {
		t.Fatalf("GetRange(%q) = %d bytes %q, want %d bytes %q", key, len(got), clip(got), len(want), clip(want))
	}
	if info.Size != int64(len(want)) {
		t.Fatalf("GetRange(%q) info.Size = %d, want %d", key, info.Size, len(want))
	}
}

// pattern returns n bytes that depend on their position and on seed, so
// that bytes from the wrong offset or the wrong object show.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i/251) ^ seed
	}
	return b
}

// clip shortens b for failure messages.
func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// sorted returns a sorted copy of keys.
func sorted(keys []string) []string {
	s := slices.Clone(keys)
	slices.Sort(s)
	return s
}
