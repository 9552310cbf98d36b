package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTTLFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "30s": 30 * time.Second, "5m": 5 * time.Minute, "forever": -1, "inf": -1, "-1": -1,
	} {
		var f ttlFlag
		if err := f.Set(in); err != nil || time.Duration(f) != want {
			t.Errorf("--metadata-ttl %q = %v, %v; want %v", in, time.Duration(f), err, want)
		}
	}
	for _, in := range []string{"", "-5s", "soon", "10"} {
		var f ttlFlag
		if err := f.Set(in); err == nil {
			t.Errorf("--metadata-ttl %q accepted as %v", in, time.Duration(f))
		}
	}
	if f := ttlFlag(-1); f.String() != "forever" {
		t.Errorf("forever prints as %q", f.String())
	}
}

func TestModeFlag(t *testing.T) {
	var m modeFlag
	if err := m.Set("0640"); err != nil || m != 0o640 {
		t.Errorf("0640 = %o, %v", m, err)
	}
	for _, in := range []string{"8", "0x1ff", "17777", "rw"} {
		if err := m.Set(in); err == nil {
			t.Errorf("mode %q accepted", in)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/plain`: "/mnt/plain", `/mnt/with\040space`: "/mnt/with space", `/a\011tab\134b`: "/a\ttab\\b", `/end\04`: `/end\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckMountpoint(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := checkMountpoint(dir); err != nil || got != dir {
		t.Errorf("an empty directory: %q, %v", got, err)
	}
	for p, want := range map[string]string{
		filepath.Join(dir, "missing"): "does not exist",
		file:                          "not a directory",
		"/proc":                       "already mounted (proc)",
	} {
		if _, err := checkMountpoint(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkMountpoint(%s) = %v, want an error saying %q", p, err, want)
		}
	}
}

func TestMountUsage(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"mount", "--help"}, &out); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, flag := range []string{"--uid", "--gid", "--file-mode", "--dir-mode", "--allow-other", "--metadata-ttl",
		"--cache-memory", "--cache-dir", "--cache-size", "--metrics-addr", "--log-level"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("ferry mount --help does not list %s", flag)
		}
	}
	out.Reset()
	if code := run([]string{"mount", "s3://b/p"}, &out); code != exitUsage || strings.Count(strings.TrimSpace(out.String()), "\n") != 0 {
		t.Errorf("one argument: exit %d, output %q", code, out.String())
	}
	out.Reset()
	args := []string{"mount", "--cache-dir", t.TempDir(), "--cache-size", "4MiB", "file:///nowhere", t.TempDir()}
	if code := run(args, &out); code != exitUsage || !strings.Contains(out.String(), "--cache-size 4.0 MiB cannot hold one block of --block-size 4.0 MiB") {
		t.Errorf("a disk tier smaller than a block: exit %d, output %q", code, out.String())
	}
}
