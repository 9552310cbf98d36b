package namespace

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestPathForRefusesHostileKeys(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	for _, tc := range []struct {
		key, reason string
	}{
		{"", "empty key"},
		{"/", "absolute"},
		{"/etc/passwd", "absolute"},
		{"a\x00b", "NUL"},
		{"..", `".." segment`},
		{"../x", `".." segment`},
		{"a/../../x", `".." segment`},
		{"a/..", `".." segment`},
		{"a/../", `".." segment`},
		{".", `"." segment`},
		{"./a", `"." segment`},
		{"a/./b", `"." segment`},
		{"a//b", "empty path segment"},
		{"a//", "empty path segment"},
		{"//", "absolute"},
		{long, "segment of 256 bytes"},
		{"a/" + long + "/b", "segment of 256 bytes"},
	} {
		e, err := PathFor(tc.key)
		if !errors.Is(err, ErrUnsafeKey) {
			t.Errorf("PathFor(%q) = %+v, %v; want ErrUnsafeKey", tc.key, e, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("PathFor(%q) error %q does not give the reason %q", tc.key, err, tc.reason)
		}
		if tc.key != "" && !strings.Contains(err.Error(), strings.ReplaceAll(tc.key, "\x00", `\x00`)) {
			t.Errorf("PathFor(%q) error %q does not name the key", tc.key, err)
		}
	}
}

func TestPathForAcceptsOrdinaryKeys(t *testing.T) {
	for _, tc := range []struct {
		key  string
		path string
		dir  bool
	}{
		{"a", "a", false},
		{"a/b/c.bin", filepath.Join("a", "b", "c.bin"), false},
		{"dir/", "dir", true},
		{"a/b/", filepath.Join("a", "b"), true},
		{"...", "...", false},
		{"a/..b/c..", filepath.Join("a", "..b", "c.."), false},
		{".hidden/x", filepath.Join(".hidden", "x"), false},
		{"sp ace/ü:ñ\t\n", filepath.Join("sp ace", "ü:ñ\t\n"), false},
		{"bad\xffutf8", "bad\xffutf8", false},
		{strings.Repeat("y", MaxNameLen), strings.Repeat("y", MaxNameLen), false},
	} {
		e, err := PathFor(tc.key)
		if err != nil {
			t.Errorf("PathFor(%q): %v", tc.key, err)
			continue
		}
		if e.Key != tc.key || e.Path != tc.path || e.Dir != tc.dir {
			t.Errorf("PathFor(%q) = %+v; want path %q dir %v", tc.key, e, tc.path, tc.dir)
		}
	}
}

// On Linux and macOS a backslash is an ordinary file-name byte; on Windows
// it is a separator and refused.
func TestPathForBackslash(t *testing.T) {
	for _, key := range []string{`a\b`, `..\..\x`, `\`} {
		e, err := PathFor(key)
		if runtime.GOOS == "windows" {
			if !errors.Is(err, ErrUnsafeKey) {
				t.Errorf("PathFor(%q) = %+v, %v; want ErrUnsafeKey on windows", key, e, err)
			}
			continue
		}
		if err != nil || e.Path != key {
			t.Errorf("PathFor(%q) = %+v, %v; want the key itself as one name", key, e, err)
		}
	}
}

func TestKeyForRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		path string
		dir  bool
		key  string
	}{
		{filepath.Join("a", "b"), false, "a/b"},
		{filepath.Join("a", "b"), true, "a/b/"},
		{"x", true, "x/"},
		{filepath.Join("a", "b") + string(filepath.Separator), true, "a/b/"},
		{".", true, ""},
		{"", false, ""},
	} {
		key := KeyFor(tc.path, tc.dir)
		if key != tc.key {
			t.Errorf("KeyFor(%q, %v) = %q; want %q", tc.path, tc.dir, key, tc.key)
		}
		if key == "" {
			continue
		}
		e, err := PathFor(key)
		if err != nil || e.Path != filepath.Clean(tc.path) || e.Dir != tc.dir {
			t.Errorf("PathFor(KeyFor(%q, %v)) = %+v, %v", tc.path, tc.dir, e, err)
		}
	}
}

func FuzzPathFor(f *testing.F) {
	for _, s := range []string{"a", "a/b", "a/", "../x", "a/../b", "/abs", "a//b", "a\x00", `a\..\b`, ".", "..", "a/./b", "C:/x", "NUL", strings.Repeat("z", 300)} {
		f.Add(s)
	}
	root := filepath.Join(f.TempDir(), "root")
	f.Fuzz(func(t *testing.T, key string) {
		e, err := PathFor(key)
		if err != nil {
			if !errors.Is(err, ErrUnsafeKey) {
				t.Fatalf("PathFor(%q): error %v does not wrap ErrUnsafeKey", key, err)
			}
			return
		}
		if !filepath.IsLocal(e.Path) {
			t.Fatalf("PathFor(%q) = %q, not local", key, e.Path)
		}
		joined := filepath.Join(root, e.Path)
		rel, err := filepath.Rel(root, joined)
		if err != nil || !filepath.IsLocal(rel) || !strings.HasPrefix(joined, root+string(filepath.Separator)) {
			t.Fatalf("PathFor(%q) = %q escapes the root: %q", key, e.Path, joined)
		}
		if e.Dir != strings.HasSuffix(key, "/") || KeyFor(e.Path, e.Dir) != key {
			t.Fatalf("PathFor(%q) = %+v does not round-trip through KeyFor (%q)", key, e, KeyFor(e.Path, e.Dir))
		}
	})
}
