package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/local"
)

// The command's contract (arguments, env, exit codes) through run(), with
// the local provider as the store.

func runLoad(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := run(append([]string{"load"}, args...), &out)
	return out.String(), code
}

// localStore makes a bucket directory holding objects under "data/" and
// returns its URL.
func localStore(t *testing.T, objs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range objs {
		if _, err := b.Put(context.Background(), "data/"+k, strings.NewReader(v), int64(len(v)), backends.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return "file://" + dir + "/data"
}

func TestLoadUsageErrors(t *testing.T) {
	t.Setenv("DATA_DIR", "")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"one argument", nil, []string{"file:///x"}},
		{"no DATA_DIR", nil, nil},
		{"tiny part size", nil, []string{"--part-size", "1KiB", "file:///x", "d"}},
		{"bad part size", nil, []string{"--part-size", "lots", "file:///x", "d"}},
		{"bad FERRY_PART_SIZE", map[string]string{"FERRY_PART_SIZE": "lots"}, []string{"file:///x", "d"}},
		{"bad FERRY_CONCURRENCY", map[string]string{"FERRY_CONCURRENCY": "-1"}, []string{"file:///x", "d"}},
		{"bad URL", nil, []string{"ftp://x/y", "d"}},
		{"unknown provider", map[string]string{"DATA_DIR": "/tmp", "DATA_STORE_PROVIDER": "ftp"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if out, code := runLoad(t, tc.args...); code != exitUsage {
				t.Errorf("exit %d, want %d\n%s", code, exitUsage, out)
			}
		})
	}
}

func TestLoadPreDownloaded(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DATA_STORE_PROVIDER", "")
	t.Setenv("DATA_STORE_URL", "")
	t.Setenv("DATA_DIR", dir)
	if out, code := runLoad(t); code != exitOK || !strings.Contains(out, "pre-downloaded mode") {
		t.Errorf("existing DATA_DIR: exit %d\n%s", code, out)
	}
	t.Setenv("DATA_DIR", filepath.Join(dir, "missing"))
	if out, code := runLoad(t); code != exitFailure {
		t.Errorf("missing DATA_DIR: exit %d, want %d\n%s", code, exitFailure, out)
	}
}

func TestLoadExitCodes(t *testing.T) {
	url := localStore(t, map[string]string{"a.txt": "a", "d/b.txt": "b"})
	dir := filepath.Join(t.TempDir(), "dest")
	if out, code := runLoad(t, "--dry-run", url, dir); code != exitChanges {
		t.Errorf("dry run of an empty dir: exit %d\n%s", code, out)
	}
	out, code := runLoad(t, url, dir)
	// One LIST per directory: the root and d/.
	if code != exitOK || !strings.Contains(out, "requests GET=2 LIST=2") {
		t.Errorf("load: exit %d\n%s", code, out)
	}
	out, code = runLoad(t, "--dry-run", url, dir)
	if code != exitOK || !strings.Contains(out, "requests LIST=2,") {
		t.Errorf("dry run when up to date: exit %d\n%s", code, out)
	}

	// DATA_DIR and DATA_STORE_* instead of arguments.
	t.Setenv("DATA_DIR", dir)
	t.Setenv("DATA_STORE_URL", url)
	if out, code := runLoad(t); code != exitOK || !strings.Contains(out, "up_to_date 2") {
		t.Errorf("load from env: exit %d\n%s", code, out)
	}

	bad := localStore(t, map[string]string{"ok.txt": "ok", ".ferry-load/x": "reserved"})
	dir2 := t.TempDir()
	out, code = runLoad(t, bad, dir2)
	if code != exitInvalidKeys || !strings.Contains(out, `".ferry-load/x"`) {
		t.Errorf("invalid key: exit %d, want %d naming it\n%s", code, exitInvalidKeys, out)
	}
	if out, code := runLoad(t, "--skip-invalid-keys", bad, dir2); code != exitOK {
		t.Errorf("--skip-invalid-keys: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir2, "ok.txt")); err != nil {
		t.Error(err)
	}
}
