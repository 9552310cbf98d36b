package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// docker runs the docker CLI and returns its combined output.
func docker(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ensureDocker makes sure a Docker engine answers: it starts dockerd
// (without a bridge or iptables: containers use --network host) when none
// runs, and stops it when the test ends.
func ensureDocker(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("docker CLI not installed (integration/tools/install.sh installs docker.io)")
	}
	if _, err := docker(t, "info"); err == nil {
		return
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d := exec.Command("dockerd", "--bridge=none", "--iptables=false")
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	t.Cleanup(func() {
		_ = d.Process.Signal(os.Interrupt)
		_ = d.Wait()
		logf.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := docker(t, "info"); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd did not come up: %s", b)
		case <-tick.C:
		}
	}
}

// buildImages builds a local base image from busybox-static (FROM scratch:
// nothing is pulled) and ferry's image on top of it through the
// Dockerfile's prebuilt target and its BASE_IMAGE build argument.
func buildImages(t *testing.T) string {
	t.Helper()
	base, image := "ferry-e2e-base:busybox", "ferry-e2e:test"
	ctxDir := t.TempDir()
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static: %v", err)
	}
	write := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(ctxDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("base/busybox", busybox, 0o755)
	write("base/Dockerfile", []byte("FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n"), 0o644)
	if out, err := docker(t, "build", "-q", "-t", base, filepath.Join(ctxDir, "base")); err != nil {
		t.Fatalf("build base image: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(ferryBin)
	if err != nil {
		t.Fatal(err)
	}
	write("bin/ferry", bin, 0o755)
	for _, f := range []string{"Dockerfile", "load.sh", "store.sh"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "images", f))
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(f, ".sh") {
			mode = 0o755
		}
		write(filepath.Join("images", f), src, mode)
	}
	out, err := docker(t, "build", "-q", "-f", filepath.Join(ctxDir, "images", "Dockerfile"), "--target", "prebuilt",
		"--build-arg", "BASE_IMAGE="+base, "-t", image, ctxDir)
	if err != nil {
		t.Fatalf("build ferry image: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = docker(t, "rmi", "-f", image, base) })
	return image
}

// TestImageLoadAndStore runs the image's /store.sh and /load.sh as the data
// broker does: env in, a volume as DATA_DIR, progress on stdout, exit code
// out.
func TestImageLoadAndStore(t *testing.T) {
	ensureDocker(t)
	image := buildImages(t)
	st := Stores(t)[0] // s3 on MinIO, reached through the host network

	src := t.TempDir()
	files := map[string][]byte{
		"model/weights.bin": bytes.Repeat([]byte("w"), 3<<20),
		"model/config.json": []byte(`{"layers": 2}`),
		"README":            []byte("trained by ferry's e2e test\n"),
	}
	for rel, data := range files {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(script, dir string, env ...string) (string, error) {
		args := []string{"run", "--rm", "--network", "host", "-v", dir + ":/data", "-e", "DATA_DIR=/data"}
		for _, kv := range append(append([]string{}, st.Env...), env...) {
			args = append(args, "-e", kv)
		}
		return docker(t, append(args, image, script)...)
	}
	url := "DATA_STORE_URL=" + st.URL
	if out, err := run("/store.sh", src, url); err != nil {
		t.Fatalf("store.sh: %v\n%s", err, out)
	}
	dst := t.TempDir()
	out, err := run("/load.sh", dst, url)
	if err != nil {
		t.Fatalf("load.sh: %v\n%s", err, out)
	}
	if !strings.Contains(out, "load") {
		t.Errorf("load.sh printed no progress on stdout: %q", out)
	}
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after load.sh: %d bytes, %v; want %d bytes", rel, len(got), err, len(want))
		}
	}
	// A restart over complete data is a no-op that still succeeds.
	if out, err := run("/load.sh", dst, url); err != nil {
		t.Fatalf("load.sh again: %v\n%s", err, out)
	}
	// Bad configuration: a one-line error naming the variable, non-zero exit.
	out, err = run("/load.sh", dst, "DATA_STORE_PROVIDER=dropbox", "DATA_STORE_BUCKET=b")
	if err == nil || !strings.Contains(out, "DATA_STORE_PROVIDER") {
		t.Fatalf("load.sh with a bad provider: err %v, output %q", err, out)
	}
	// Pre-downloaded mode: no store, DATA_DIR exists: success.
	if out, err := run("/load.sh", dst, "DATA_STORE_PROVIDER="); err != nil {
		t.Fatalf("load.sh in pre-downloaded mode: %v\n%s", err, out)
	}
}
