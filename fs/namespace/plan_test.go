package namespace

import (
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ferryio/ferry/backends"
)

func listing(keys ...string) iter.Seq2[backends.Entry, error] {
	return func(yield func(backends.Entry, error) bool) {
		for _, k := range keys {
			if !yield(backends.Entry{ObjectInfo: backends.ObjectInfo{Key: k}}, nil) {
				return
			}
		}
	}
}

// verdicts runs Plan and returns each key's error (nil for accepted keys),
// failing the test when a key is missing or yielded twice.
func verdicts(t *testing.T, keys ...string) map[string]error {
	t.Helper()
	got := map[string]error{}
	for it, err := range Plan(listing(keys...)) {
		if err != nil {
			t.Fatalf("Plan(%q): %v", keys, err)
		}
		if _, dup := got[it.Object.Key]; dup {
			t.Fatalf("Plan(%q) yielded %q twice", keys, it.Object.Key)
		}
		if it.Err == nil && it.Key != it.Object.Key {
			t.Fatalf("Plan(%q): accepted item %q has entry %+v", keys, it.Object.Key, it.Entry)
		}
		got[it.Object.Key] = it.Err
	}
	if len(got) != len(keys) {
		t.Fatalf("Plan(%q) yielded %d items, want %d", keys, len(got), len(keys))
	}
	return got
}

func TestPlanConflicts(t *testing.T) {
	for _, tc := range []struct {
		keys     []string
		conflict []string // keys expected to fail with ErrConflict
		unsafe   []string // keys expected to fail with ErrUnsafeKey
	}{
		{keys: []string{"a", "a-b", "a.txt", "a/b", "b"}, conflict: []string{"a", "a/b"}},
		{keys: []string{"a", "a/"}, conflict: []string{"a", "a/"}},
		{keys: []string{"a/", "a/b", "a/c/", "a/c/d"}},
		{keys: []string{"a", "a-b/c", "a-b/d"}},
		{
			keys:     []string{"x", "x!", "x!/y", "x.z", "x/z", "x/z/w", "y"},
			conflict: []string{"x", "x!", "x!/y", "x/z", "x/z/w"},
		},
		{keys: []string{"a", "a/../b", "a//c"}, unsafe: []string{"a/../b", "a//c"}},
		{keys: []string{"m/a", "m/a.b", "m/a.b/c", "m/a/d"}, conflict: []string{"m/a", "m/a.b", "m/a.b/c", "m/a/d"}},
		{keys: []string{"", "data"}, unsafe: []string{""}},
	} {
		got := verdicts(t, tc.keys...)
		for _, k := range tc.keys {
			err := got[k]
			switch {
			case slices.Contains(tc.conflict, k):
				if !errors.Is(err, ErrConflict) {
					t.Errorf("%q: key %q: %v; want ErrConflict", tc.keys, k, err)
				} else if !strings.Contains(err.Error(), k) {
					t.Errorf("%q: key %q: error %q does not name it", tc.keys, k, err)
				}
			case slices.Contains(tc.unsafe, k):
				if !errors.Is(err, ErrUnsafeKey) {
					t.Errorf("%q: key %q: %v; want ErrUnsafeKey", tc.keys, k, err)
				}
			case err != nil:
				t.Errorf("%q: key %q: unexpected %v", tc.keys, k, err)
			}
		}
	}
}

// The conflict message names both keys of the pair.
func TestPlanConflictNamesBothKeys(t *testing.T) {
	got := verdicts(t, "model", "model.json", "model/weights")
	for _, k := range []string{"model", "model/weights"} {
		msg := got[k].Error()
		if !strings.Contains(msg, `"model"`) || !strings.Contains(msg, `"model/weights"`) {
			t.Errorf("error for %q = %q; want both keys named", k, msg)
		}
	}
}

func TestPlanUnsortedAndListingError(t *testing.T) {
	for _, keys := range [][]string{{"b", "a"}, {"a", "a"}} {
		var last error
		for _, err := range Plan(listing(keys...)) {
			last = err
		}
		if !errors.Is(last, ErrUnsorted) {
			t.Errorf("Plan(%q) ended with %v; want ErrUnsorted", keys, last)
		}
	}
	boom := errors.New("list failed")
	src := func(yield func(backends.Entry, error) bool) {
		if yield(backends.Entry{ObjectInfo: backends.ObjectInfo{Key: "a"}}, nil) {
			yield(backends.Entry{}, boom)
		}
	}
	var errs []error
	for it, err := range Plan(src) {
		if err == nil {
			t.Errorf("item %q yielded although the listing failed before it was decided", it.Object.Key)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], boom) {
		t.Errorf("Plan errors = %v; want the listing error once", errs)
	}
}

// Implicit directories from a delimited listing (IsPrefix) conflict with a
// file of the same name, as mount sees them through ListDir.
func TestPlanListDirPrefixes(t *testing.T) {
	src := func(yield func(backends.Entry, error) bool) {
		for _, e := range []backends.Entry{
			{ObjectInfo: backends.ObjectInfo{Key: "d/a"}},
			{ObjectInfo: backends.ObjectInfo{Key: "d/a.txt"}},
			{ObjectInfo: backends.ObjectInfo{Key: "d/a/"}, IsPrefix: true},
			{ObjectInfo: backends.ObjectInfo{Key: "d/b/"}, IsPrefix: true},
		} {
			if !yield(e, nil) {
				return
			}
		}
	}
	got := map[string]Item{}
	for it, err := range Plan(src) {
		if err != nil {
			t.Fatal(err)
		}
		got[it.Object.Key] = it
	}
	if !errors.Is(got["d/a"].Err, ErrConflict) || !errors.Is(got["d/a/"].Err, ErrConflict) {
		t.Errorf("d/a: %v, d/a/: %v; want both ErrConflict", got["d/a"].Err, got["d/a/"].Err)
	}
	if it := got["d/b/"]; it.Err != nil || !it.Dir || !it.Object.IsPrefix {
		t.Errorf("d/b/ = %+v; want an accepted directory", it)
	}
	if got["d/a.txt"].Err != nil {
		t.Errorf("d/a.txt: %v", got["d/a.txt"].Err)
	}
}

// The Checker holds only files that are prefixes of the current key.
func TestCheckerMemoryIsBoundedByDepth(t *testing.T) {
	var c Checker
	maxHeld := 0
	for i := range 10000 {
		key := fmt.Sprintf("a/b/c/d/e/f%05d", i)
		if _, err := c.Add(backends.Entry{ObjectInfo: backends.ObjectInfo{Key: key}}); err != nil {
			t.Fatal(err)
		}
		maxHeld = max(maxHeld, len(c.held))
	}
	if maxHeld > 1 {
		t.Errorf("held up to %d files for keys that are not prefixes of each other", maxHeld)
	}
	// A chain "p", "p!", "p!!", ... is held whole until a key sorts past.
	c = Checker{}
	for i := range 50 {
		if _, err := c.Add(backends.Entry{ObjectInfo: backends.ObjectInfo{Key: "p" + strings.Repeat("!", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.held) != 50 {
		t.Errorf("held %d of a 50-key prefix chain", len(c.held))
	}
	items, err := c.Add(backends.Entry{ObjectInfo: backends.ObjectInfo{Key: "q"}})
	if err != nil || len(items) != 50 || len(c.held) != 1 {
		t.Errorf("after q: released %d, held %d, err %v", len(items), len(c.held), err)
	}
	for i := 1; i < len(items); i++ {
		if items[i-1].Object.Key >= items[i].Object.Key {
			t.Errorf("released out of key order: %q then %q", items[i-1].Object.Key, items[i].Object.Key)
		}
	}
}

// Plan agrees with a brute-force O(n²) definition on random listings over a
// tiny alphabet that makes prefixes and '-' < '.' < '/' orderings common.
func TestPlanMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab-./")
	for round := range 2000 {
		set := map[string]bool{}
		for range rng.IntN(12) + 1 {
			b := make([]byte, rng.IntN(6)+1)
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			set[string(b)] = true
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range set {
				if !yield(k) {
					return
				}
			}
		})
		got := verdicts(t, keys...)
		for _, k := range keys {
			want := bruteForce(keys, k)
			if (want == nil) != (got[k] == nil) || (want != nil && !errors.Is(got[k], want)) {
				t.Fatalf("round %d %q: key %q: got %v, want %v", round, keys, k, got[k], want)
			}
		}
	}
}

func bruteForce(keys []string, k string) error {
	if _, err := PathFor(k); err != nil {
		return ErrUnsafeKey
	}
	for _, o := range keys {
		if _, err := PathFor(o); err != nil || o == k {
			continue
		}
		isFile := func(s string) bool { return !strings.HasSuffix(s, "/") }
		if isFile(o) && strings.HasPrefix(k, o+"/") || isFile(k) && strings.HasPrefix(o, k+"/") {
			return ErrConflict
		}
	}
	return nil
}
