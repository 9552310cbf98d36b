package az

import (
	"cmp"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ferryio/ferry/backends"
)

func TestMetaNameEncoding(t *testing.T) {
	ident := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	tests := []struct{ key, name string }{
		{"mtime", "mtime"},
		{"mode", "mode"},
		{"ferry-sha", "ferry_2dsha"},
		{"with-dash2", "with_2ddash2"},
		{"_x", "_5fx"},
		{"a_b", "a_5fb"},
		{"1a", "_31a"},
		{"a1", "a1"},
		{"Upper", "_55pper"},
		{"dot.ted", "dot_2eted"},
		{"é", "_c3_a9"},
	}
	for _, tc := range tests {
		got := encodeMetaName(tc.key)
		if got != tc.name {
			t.Errorf("encodeMetaName(%q) = %q, want %q", tc.key, got, tc.name)
		}
		if !ident.MatchString(got) {
			t.Errorf("encodeMetaName(%q) = %q is not a C# identifier", tc.key, got)
		}
		// The service may hand names back in any case.
		for _, n := range []string{got, strings.ToUpper(got), strings.ToUpper(got[:1]) + got[1:]} {
			if back := decodeMetaName(n); back != tc.key {
				t.Errorf("decodeMetaName(%q) = %q, want %q", n, back, tc.key)
			}
		}
	}
	// Names written by other tools read as they are, lower-cased.
	for n, want := range map[string]string{"My_Key": "my_key", "a_": "a_", "a_2": "a_2", "x_zz": "x_zz", "Plain": "plain"} {
		if got := decodeMetaName(n); got != want {
			t.Errorf("decodeMetaName(%q) = %q, want %q", n, got, want)
		}
	}
}

// TestReorder feeds names in UTF-16 order, and in byte order, and wants
// byte order out, holding back only names with characters above U+FFFF.
func TestReorder(t *testing.T) {
	alphabet := []string{"a", "/", "\ue000", "\ufffd", "\U0001F600", "\U00010000", "\ud7ff"}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		set := map[string]bool{}
		for range 1 + rng.IntN(30) {
			var sb strings.Builder
			for range 1 + rng.IntN(4) {
				sb.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			set[sb.String()] = true
		}
		want := slices.Sorted(func(yield func(string) bool) {
			for k := range set {
				if !yield(k) {
					return
				}
			}
		})
		utf16 := slices.Clone(want)
		slices.SortFunc(utf16, compareUTF16)
		for _, in := range [][]string{utf16, want} {
			var ro reorder
			var got []string
			for _, k := range in {
				for _, e := range ro.push(backends.Entry{ObjectInfo: backends.ObjectInfo{Key: k}}) {
					got = append(got, e.Key)
				}
			}
			for _, e := range ro.flush() {
				got = append(got, e.Key)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("round %d: reorder(%q) = %q, want %q", round, in, got, want)
			}
		}
	}
	// Plain names are never held back.
	var ro reorder
	for _, k := range []string{"a", "b/c", "é", "日本"} {
		if out := ro.push(backends.Entry{ObjectInfo: backends.ObjectInfo{Key: k}}); len(out) != 1 || out[0].Key != k {
			t.Fatalf("push(%q) = %v, want it back at once", k, out)
		}
	}
}

func TestCompareUTF16(t *testing.T) {
	// The order the service lists in: U+D7FF < supplementary < U+E000.
	order := []string{"", "a", "a\ud7ff", "a\U00010000", "a\U0001F600", "a\ue000", "a\uffff", "b"}
	for i := range order {
		for j := range order {
			if got, want := compareUTF16(order[i], order[j]), cmp.Compare(i, j); got != want {
				t.Errorf("compareUTF16(%q, %q) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
}

func TestCRC32CCombine(t *testing.T) {
	tab := crc32.MakeTable(crc32.Castagnoli)
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for range 50 {
		var cuts []int
		for range rng.IntN(5) {
			cuts = append(cuts, rng.IntN(len(data)+1))
		}
		cuts = append(cuts, 0, len(data))
		slices.Sort(cuts)
		var crc uint32
		for i := 1; i < len(cuts); i++ {
			part := data[cuts[i-1]:cuts[i]]
			crc = crc32cCombine(crc, crc32.Checksum(part, tab), int64(len(part)))
		}
		if want := crc32.Checksum(data, tab); crc != want {
			t.Fatalf("cuts %v: combined %08x, want %08x", cuts, crc, want)
		}
	}
	if got := binary.BigEndian.AppendUint32(nil, crc32cCombine(0, 0, 0)); !slices.Equal(got, []byte{0, 0, 0, 0}) {
		t.Fatalf("combining empty parts = %x", got)
	}
}

func TestCheckKey(t *testing.T) {
	b := &Backend{container: "c"}
	valid := []string{"a", "dir/", "a//b", "/lead", "x/../y", "../up", "a.b", ".hidden", "dots.../x..y", "/",
		"tab?no#hash%20", strings.Repeat("é", maxKeyLen)}
	invalid := []string{"", "a.", "dir./", "x/..", "x/.", "back\\slash", "ctl\x01", "del\x7f", "non\uffff", "\xff",
		strings.Repeat("x", maxKeyLen+1)}
	for _, k := range valid {
		if err := b.checkKey("put", k); err != nil {
			t.Errorf("checkKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range invalid {
		err := b.checkKey("put", k)
		var be *backends.Error
		if !errors.Is(err, backends.ErrInvalidKey) || !errors.As(err, &be) || be.Key != k {
			t.Errorf("checkKey(%q) = %v, want an ErrInvalidKey *backends.Error", k, err)
		}
	}
}
