package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "1048576": 1 << 20, "16MiB": 16 << 20, "16m": 16 << 20, "1 GiB": 1 << 30,
		"5MB": 5_000_000, "2K": 2048, "3ki": 3072, "1T": 1 << 40,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "MiB", "1.5MiB", "12XB", "99999999999T"} {
		if n, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, n)
		}
	}
}

// storeRun runs ferry store with env set and returns its output and exit
// code.
func storeRun(t *testing.T, env map[string]string, args ...string) (string, int) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	code := run(append([]string{"store"}, args...), &out)
	return out.String(), code
}

func TestStoreCommand(t *testing.T) {
	for _, k := range []string{"DATA_DIR", "DATA_STORE_URL", "DATA_STORE_PROVIDER", "DATA_STORE_BUCKET", "DATA_STORE_PREFIX", "FERRY_PART_SIZE", "FERRY_CONCURRENCY"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	bucket := t.TempDir()
	url := "file://" + bucket

	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		out  string
	}{
		{"one argument", nil, []string{src}, exitUsage, "no arguments or two"},
		{"no DATA_DIR", nil, nil, exitUsage, "DATA_DIR is not set"},
		{"DIR missing", nil, []string{filepath.Join(src, "nope"), url}, exitUsage, "is not a directory"},
		{"bad URL", nil, []string{src, "ftp://x"}, exitUsage, "unknown scheme"},
		{"bad FERRY_PART_SIZE", map[string]string{"FERRY_PART_SIZE": "lots"}, []string{src, url}, exitUsage, "FERRY_PART_SIZE"},
		{"pre-downloaded mode", map[string]string{"DATA_DIR": src}, nil, exitOK, "pre-downloaded mode"},
		{"dry run with changes", nil, []string{"--dry-run", src, url}, exitChanges, "would upload f.txt"},
		{"store from env", map[string]string{"DATA_DIR": src, "DATA_STORE_URL": url}, nil, exitOK, "uploaded 1"},
		{"dry run, nothing to do", nil, []string{"--dry-run", src, url}, exitOK, "changes 0"},
		{"re-run", nil, []string{"--log-format", "json", src, url}, exitOK, `"up_to_date":1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := storeRun(t, c.env, c.args...)
			if code != c.code || !strings.Contains(out, c.out) {
				t.Fatalf("exit %d, want %d; output should contain %q:\n%s", code, c.code, c.out, out)
			}
		})
	}
	if got, err := os.ReadFile(filepath.Join(bucket, "f.txt")); err != nil || string(got) != "hello" {
		t.Fatalf("stored object: %q, %v", got, err)
	}
}
