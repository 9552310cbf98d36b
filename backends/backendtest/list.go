package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/walk"
)

func listCases() []testCase {
	return []testCase{
		{"List/Order", testListOrder},
		{"List/Pagination", testListPagination},
		{"List/Entries", testListEntries},
		{"ListDir", testListDir},
		{"ListDir/Empty", testListDirEmpty},
		{"List/Walk", testListWalk},
	}
}

// orderKeys are stored out of order; their byte order puts a file before a
// "directory" of nearly the same name and vice versa ('-' < '.' < '/' < '0'),
// so a local walk that sorts by file name alone gets it wrong. None is both
// an object and a "directory", so every store can hold them all.
var orderKeys = []string{
	"b", "a/c/d", "é", "aa", "a0", "a/b", "a.b", "B", "a-b", "a/b0", "a/a-",
	"zz/é/1", "zz/e/1", "~",
}

func testListOrder(t *testing.T, s suite) {
	b := s.newStore(t)
	for _, k := range orderKeys {
		put(t, b, k, []byte(k), backends.PutOptions{})
	}
	want := sorted(orderKeys)
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", want},
		{"a", filter(want, "a")},   // not a directory boundary
		{"a/", filter(want, "a/")}, // a directory
		{"a/b", []string{"a/b", "a/b0"}},
		{"a/c", []string{"a/c/d"}},
		{"zz/", []string{"zz/e/1", "zz/é/1"}},
		{"nothing", nil},
		{"nothing/", nil},
		{"a/c/d/", nil}, // below an object
	}
	for _, tc := range tests {
		got := listKeys(t, b.List(t.Context(), tc.prefix))
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) =\n  %q\nwant\n  %q", tc.prefix, got, tc.want)
		}
	}
}

// filter returns the keys starting with p.
func filter(keys []string, p string) []string {
	var out []string
	for _, k := range keys {
		if len(k) >= len(p) && k[:len(p)] == p {
			out = append(out, k)
		}
	}
	return out
}

// testListPagination puts more keys than one listing page holds (1,000 on
// every store) and checks that List returns them all, in order, and that a
// consumer may stop early.
func testListPagination(t *testing.T, s suite) {
	b := s.newStore(t)
	const n = 1100
	keys := make([]string, n)
	for i := range keys {
		// Two levels, so that a local walk crosses directories while
		// paginating, and a key outside the listed prefix.
		keys[i] = fmt.Sprintf("page/%02d/%04d", i%7, i)
	}
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(16)
	for _, k := range append(slices.Clone(keys), "pagf") {
		g.Go(func() error {
			_, err := b.Put(ctx, k, emptyReader(), 0, backends.PutOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("putting %d keys: %v", n, err)
	}
	got := listKeys(t, b.List(t.Context(), "page/"))
	want := sorted(keys)
	if len(got) != len(want) {
		t.Fatalf("List(page/) gave %d keys, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("List(page/) key %d = %q, want %q", i, got[i], want[i])
		}
	}
	// Stopping early must be allowed (the iterator must not call yield
	// again after it returned false).
	count := 0
	for _, err := range b.List(t.Context(), "page/") {
		if err != nil {
			t.Fatal(err)
		}
		count++
		if count == 3 {
			break
		}
	}
	if count != 3 {
		t.Fatalf("early break: counted %d entries, want 3", count)
	}
}

// testListEntries checks the fields of listed objects: size, a version that
// matches Stat, and no prefixes from List.
func testListEntries(t *testing.T, s suite) {
	b := s.newStore(t)
	data := map[string][]byte{
		"e/zero":  {},
		"e/small": []byte("hello"),
		"e/dir/":  {}, // a marker object is listed like any other
		"e/dir/x": pattern(3000, 1),
	}
	for k, v := range data {
		put(t, b, k, v, backends.PutOptions{})
	}
	var got []string
	for e, err := range b.List(t.Context(), "e/") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Key)
		if e.IsPrefix {
			t.Errorf("List yielded a prefix entry %q", e.Key)
		}
		want, ok := data[e.Key]
		if !ok {
			t.Errorf("List yielded unknown key %q", e.Key)
			continue
		}
		if e.Size != int64(len(want)) {
			t.Errorf("List entry %q: Size %d, want %d", e.Key, e.Size, len(want))
		}
		st, err := b.Stat(t.Context(), e.Key)
		if err != nil {
			t.Fatalf("Stat(%q): %v", e.Key, err)
		}
		// Listings may carry fewer version fields than Stat (no version
		// id on s3), but those they carry must agree.
		if (e.Version.ETag != "" && e.Version.ETag != st.Version.ETag) || (e.Version.ID != "" && e.Version.ID != st.Version.ID) {
			t.Errorf("List entry %q: Version %v, Stat says %v", e.Key, e.Version, st.Version)
		}
		if e.ModTime.IsZero() {
			t.Errorf("List entry %q: zero ModTime", e.Key)
		}
	}
	want := []string{"e/dir/", "e/dir/x", "e/small", "e/zero"}
	if !slices.Equal(got, want) {
		t.Fatalf("List(e/) = %q, want %q", got, want)
	}
	// A marker equal to the listed prefix is listed too.
	if got, want := listKeys(t, b.List(t.Context(), "e/dir/")), []string{"e/dir/", "e/dir/x"}; !slices.Equal(got, want) {
		t.Fatalf("List(e/dir/) = %q, want %q", got, want)
	}
}

// testListDir checks one-level listings: common prefixes once each, marker
// objects, byte order across objects and prefixes.
func testListDir(t *testing.T, s suite) {
	b := s.newStore(t)
	for _, k := range []string{
		"top.txt", "dir/a", "dir/b/c", "dir/b/d", "dir/", "dir2/x", "dir-x",
		"empty/", "deep/1/2/3", "dir/b/e/f",
	} {
		put(t, b, k, nil, backends.PutOptions{})
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		// "dir/" is a marker, but one level down from "" it is the common
		// prefix "dir/", yielded once.
		{"", []string{"P:deep/", "dir-x", "P:dir/", "P:dir2/", "P:empty/", "top.txt"}},
		// The marker equal to the prefix is yielded as an object.
		{"dir/", []string{"dir/", "dir/a", "P:dir/b/"}},
		{"dir/b/", []string{"dir/b/c", "dir/b/d", "P:dir/b/e/"}},
		{"empty/", []string{"empty/"}},
		{"deep/", []string{"P:deep/1/"}},
		// A prefix that does not end in "/" filters names.
		{"dir", []string{"dir-x", "P:dir/", "P:dir2/"}},
		{"dir/b/d", []string{"dir/b/d"}},
		{"nothing/", nil},
		{"top.txt/", nil},
	}
	for _, tc := range tests {
		got := listKeys(t, b.ListDir(t.Context(), tc.prefix))
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListDir(%q) =\n  %q\nwant\n  %q", tc.prefix, got, tc.want)
		}
	}
	// Prefix entries carry only a key; objects carry their size.
	for e, err := range b.ListDir(t.Context(), "dir/") {
		if err != nil {
			t.Fatal(err)
		}
		if e.IsPrefix && (e.Size != 0 || !e.Version.IsZero()) {
			t.Errorf("ListDir prefix entry %+v carries object fields", e)
		}
	}
}

// testListDirEmpty checks that deleting the last object under a "directory"
// makes its prefix disappear, as on an object store.
func testListDirEmpty(t *testing.T, s suite) {
	b := s.newStore(t)
	put(t, b, "gone/deeper/x", []byte("x"), backends.PutOptions{})
	put(t, b, "kept", []byte("k"), backends.PutOptions{})
	if err := b.Delete(t.Context(), "gone/deeper/x"); err != nil {
		t.Fatal(err)
	}
	got := listKeys(t, b.ListDir(t.Context(), ""))
	if want := []string{"kept"}; !slices.Equal(got, want) {
		t.Fatalf("ListDir(\"\") after deleting the only object below gone/ = %q, want %q", got, want)
	}
	if got := listKeys(t, b.List(t.Context(), "")); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("List(\"\") = %q, want [kept]", got)
	}
}

// testListWalk checks that walk.List, which expands ListDir listings
// concurrently, yields exactly what List yields: same keys in the same byte
// order (across file/"directory" names that sort around '/'), markers
// included, same sizes and versions; that it may be stopped early; and that
// a cancelled context ends it with an error.
func testListWalk(t *testing.T, s suite) {
	b := s.newStore(t)
	keys := append(slices.Clone(orderKeys),
		"w/", "w/d1/", "w/d1/x", "w/d1/y/", "w/d2/a/b/c", "w/d2/a-", "w/d20/q", "w/e")
	for i := range 30 {
		keys = append(keys, fmt.Sprintf("w/many/%02d/f%d", i%6, i))
	}
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(16)
	for i, k := range keys {
		g.Go(func() error {
			data := pattern(i, byte(i))
			if strings.HasSuffix(k, "/") {
				data = nil // a marker holds no bytes
			}
			_, err := b.Put(ctx, k, bytes.NewReader(data), int64(len(data)), backends.PutOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("putting %d keys: %v", len(keys), err)
	}
	collect := func(seq iter.Seq2[backends.Entry, error]) []backends.Entry {
		var out []backends.Entry
		for e, err := range seq {
			if err != nil {
				t.Fatalf("listing failed after %d entries: %v", len(out), err)
			}
			out = append(out, e)
		}
		return out
	}
	for _, prefix := range []string{"", "a", "a/", "w/", "w/d2", "w/many/", "zz/", "nothing/", "a/c/d/"} {
		want := collect(b.List(t.Context(), prefix))
		for _, conc := range []int{1, 3} {
			got := collect(walk.List(t.Context(), b, prefix, walk.Options{Concurrency: conc}))
			if len(got) != len(want) {
				t.Errorf("walk.List(%q, concurrency %d) gave %d entries, List %d:\n  %q\n  %q",
					prefix, conc, len(got), len(want), entryKeys(got), entryKeys(want))
				continue
			}
			for i := range got {
				g, w := got[i], want[i]
				if g.Key != w.Key || g.IsPrefix || g.Size != w.Size || g.Version != w.Version {
					t.Errorf("walk.List(%q, concurrency %d) entry %d = %+v, List has %+v", prefix, conc, i, g, w)
					break
				}
			}
		}
	}
	count := 0
	for _, err := range walk.List(t.Context(), b, "w/", walk.Options{Concurrency: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if count++; count == 4 {
			break
		}
	}
	if count != 4 {
		t.Fatalf("early break: counted %d entries, want 4", count)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	var last error
	for _, err := range walk.List(cancelled, b, "w/", walk.Options{}) {
		last = err
	}
	if !errors.Is(last, context.Canceled) {
		t.Fatalf("walk.List with a cancelled context ended with %v, want context.Canceled", last)
	}
}

func entryKeys(es []backends.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Key
	}
	return out
}
