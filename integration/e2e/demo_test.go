package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// make demo, the README's first command for a newcomer, runs demo.sh: it
// must keep working with the local provider alone, and show the round trip
// verified.
func TestDemo(t *testing.T) {
	cmd := exec.Command("bash", "../tools/demo.sh", ferryBin)
	cmd.Env = append(os.Environ(), "FERRY_DEMO_DIR="+t.TempDir())
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	for _, want := range []string{"uploaded 46", "verified 46", "up_to_date 46", "is identical to"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "unverified") {
		t.Errorf("demo loaded files it could not verify:\n%s", out)
	}
}
