package backendtest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ferryio/ferry/backends"
)

func keyCases() []testCase {
	return []testCase{
		{"Keys/Weird", testWeirdKeys},
		{"Keys/Raw", testRawKeys},
	}
}

// longKey is a 1,000-byte key made of path segments of at most 200 bytes,
// which every store (and every filesystem) can hold.
func longKey() string {
	segs := []string{
		strings.Repeat("a", 199), strings.Repeat("b", 199), strings.Repeat("c", 199),
		strings.Repeat("d", 199),
	}
	k := "long/" + strings.Join(segs, "/") + "/"
	return k + strings.Repeat("e", 1000-len(k))
}

// weirdKeys are keys every store must hold: characters that need escaping
// in URLs, in XML or in shells, and non-ASCII text.
func weirdKeys() []string {
	return []string{
		"with space",
		" leading space",
		"unicode/日本語/ファイル.txt",
		"unicode/Ünïcödé-é-e\u0301", // both forms of é
		"emoji/🙂🚀",
		"percent%20%2F%",
		"plus+sign",
		"question?mark",
		"hash#tag",
		"amp&and=eq;semi",
		"quote'single\"double",
		"brackets[1]{2}(3)<4>",
		"star*tilde~caret^pipe|",
		"comma,colon:at@dollar$bang!",
		".hidden/.dotfile",
		"dots.../x..y",
		longKey(),
	}
}

// rawKeys are keys an object store holds but a filesystem cannot.
func rawKeys() []string {
	return []string{
		"../dotdot",
		"raw/../up",
		"/leading/slash",
		"raw//double",
		strings.Repeat("s", 1000), // one 1,000-byte segment
	}
}

// testWeirdKeys round-trips every weird key through Put, Stat, GetRange
// and List.
func testWeirdKeys(t *testing.T, s suite) {
	b := s.newStore(t)
	if n := len(longKey()); n != 1000 {
		t.Fatalf("longKey is %d bytes", n)
	}
	roundTrip(t, b, weirdKeys())
}

// testRawKeys round-trips the raw keys on stores that hold them, and on the
// others checks they are refused with ErrInvalidKey and nothing is written.
func testRawKeys(t *testing.T, s suite) {
	b := s.newStore(t)
	if s.caps.RawKeys {
		roundTrip(t, b, rawKeys())
		return
	}
	for _, key := range rawKeys() {
		_, err := b.Put(t.Context(), key, bytes.NewReader([]byte("x")), 1, backends.PutOptions{})
		wantKind(t, "Put("+quote(key)+")", err, backends.ErrInvalidKey)
		_, err = b.Stat(t.Context(), key)
		if !errors.Is(err, backends.ErrInvalidKey) && !errors.Is(err, backends.ErrNotExist) {
			t.Errorf("Stat(%s) = %v, want ErrInvalidKey or ErrNotExist", quote(key), err)
		}
		_, _, err = tryRead(t.Context(), b, key, 0, -1, backends.ReadOptions{})
		if !errors.Is(err, backends.ErrInvalidKey) && !errors.Is(err, backends.ErrNotExist) {
			t.Errorf("GetRange(%s) = %v, want ErrInvalidKey or ErrNotExist", quote(key), err)
		}
		if err := b.Delete(t.Context(), key); err != nil && !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("Delete(%s) = %v, want nil or ErrInvalidKey", quote(key), err)
		}
	}
	wantEmpty(t, b)
}

// roundTrip puts each key with its own name as content and reads it back
// every way.
func roundTrip(t *testing.T, b backends.Backend, keys []string) {
	t.Helper()
	for _, key := range keys {
		info, err := b.Put(t.Context(), key, strings.NewReader(key), int64(len(key)), backends.PutOptions{})
		if err != nil {
			t.Errorf("Put(%s): %v", quote(key), err)
			continue
		}
		if info.Key != key {
			t.Errorf("Put(%s) returned key %s", quote(key), quote(info.Key))
		}
		st, err := b.Stat(t.Context(), key)
		if err != nil {
			t.Errorf("Stat(%s): %v", quote(key), err)
			continue
		}
		if st.Key != key || st.Size != int64(len(key)) {
			t.Errorf("Stat(%s) = key %s size %d", quote(key), quote(st.Key), st.Size)
		}
		got, _, err := tryRead(t.Context(), b, key, 0, -1, backends.ReadOptions{})
		if err != nil || string(got) != key {
			t.Errorf("GetRange(%s) = %q, %v", quote(key), clip(got), err)
		}
	}
	got := listKeys(t, b.List(t.Context(), ""))
	if want := sorted(keys); !slices.Equal(got, want) {
		t.Errorf("List(\"\") =\n  %q\nwant\n  %q", got, want)
	}
	for _, key := range keys {
		if err := b.Delete(t.Context(), key); err != nil {
			t.Errorf("Delete(%s): %v", quote(key), err)
		}
	}
	wantEmpty(t, b)
}

// quote quotes a key for messages, shortening long ones.
func quote(key string) string {
	if len(key) > 60 {
		return fmt.Sprintf("%q…(%d bytes)", key[:40], len(key))
	}
	return fmt.Sprintf("%q", key)
}
