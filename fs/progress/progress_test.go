package progress

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestTextSummary(t *testing.T) {
	var tr Tracker
	tr.AddTotal(3, 3<<20)
	tr.Skipped(1 << 20)
	tr.AddBytes(2 << 20)
	tr.FileDone()
	tr.FileDone()
	var out bytes.Buffer
	r := Start(&out, &tr, Options{Op: "load", Interval: time.Hour})
	s, _ := r.Stop("done", map[string]any{"requests": "GET=2 LIST=1"})
	if s.FilesDone != 3 || s.BytesDone != 3<<20 || s.Skipped != 1 {
		t.Fatalf("snapshot %+v", s)
	}
	got := out.String()
	for _, want := range []string{"load: done: 3/3 files, 3.0 MiB/3.0 MiB", "requests GET=2 LIST=1"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	if strings.Count(got, "\n") != 1 {
		t.Errorf("want exactly one line, got %q", got)
	}
}

func TestJSONLines(t *testing.T) {
	var tr Tracker
	tr.AddTotal(1, 10)
	var out bytes.Buffer
	r := Start(&out, &tr, Options{Op: "store", Format: JSON, Interval: time.Hour})
	r.Event("warning", `skipping key "a/../b"`, map[string]any{"key": "a/../b"})
	r.Stop("failed", map[string]any{"exit": 3})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got %q", out.String())
	}
	var ev, sum map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil || ev["key"] != "a/../b" || ev["event"] != "warning" {
		t.Fatalf("event line %q: %v", lines[0], err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &sum); err != nil || sum["event"] != "failed" || sum["files_total"] != 1.0 || sum["exit"] != 3.0 {
		t.Fatalf("summary line %q: %v", lines[1], err)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 29: "1.5 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
