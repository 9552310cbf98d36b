package main

import (
	"bytes"
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
