package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The top level of the command line: usage, help, version, unknown
// commands, each with its exit code.
func TestTopLevel(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in the output
	}{
		{"no command", nil, exitUsage, []string{"Usage: ferry <command>", "  load ", "  mount ", "  store ", "  version "}},
		{"--help", []string{"--help"}, exitOK, []string{"Usage: ferry <command>", "Store URLs:"}},
		{"help of a command", []string{"help", "store"}, exitOK, []string{"Usage: ferry store", "--part-size"}},
		{"a command's --help", []string{"mount", "--help"}, exitOK, []string{"Usage: ferry mount", "--cache-dir"}},
		{"version", []string{"version"}, exitOK, []string{"ferry "}},
		{"--version", []string{"--version"}, exitOK, []string{"ferry "}},
		{"version with an argument", []string{"version", "x"}, exitUsage, []string{"version takes no arguments"}},
		{"unknown command", []string{"lod"}, exitUsage, []string{`unknown command "lod"`}},
		{"unknown flag", []string{"load", "--bogus"}, exitUsage, []string{"ferry load:", "bogus", "see ferry load --help"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(tc.args, &out); code != tc.code {
				t.Errorf("exit %d, want %d:\n%s", code, tc.code, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestFlagsAmongOperands(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	q := fs.Bool("q", false, "")
	v := fs.String("s", "", "")
	got, err := parseInterspersed(fs, []string{"a", "-q", "b", "-s", "x", "--", "-c", "-q"})
	if err != nil || !slices.Equal(got, []string{"a", "b", "-c", "-q"}) || !*q || *v != "x" {
		t.Fatalf("operands %q, -q %v, -s %q, err %v; want [a b -c -q], true, x", got, *q, *v, err)
	}

	// As users type them: flags after the operands.
	url := localStore(t, map[string]string{"f.txt": "hello"})
	dir := filepath.Join(t.TempDir(), "d")
	var out bytes.Buffer
	if code := run([]string{"load", url, dir, "--quiet", "--log-level", "warn"}, &out); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f.txt")); err != nil || string(b) != "hello" {
		t.Fatalf("f.txt: %q, %v", b, err)
	}
}
