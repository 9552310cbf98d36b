package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/integration/testenv"
)

// Helpers of the mount tests. Every mount runs in a ferry subprocess, so a
// hang cannot deadlock the test binary: a watchdog kills the process (the
// kernel then fails the pending requests with ENOTCONN) and cleanup always
// unmounts lazily.

// mountLife bounds how long one ferry mount may live in a test.
const mountLife = 5 * time.Minute

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer  // GUARDED_BY(mu)
	changed chan struct{} // GUARDED_BY(mu); closed by the next Write, nil if nobody waits
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.buf.Write(p)
}

// waitFor returns true once the output holds s, false if stop is closed
// or timeout passes first without it.
func (b *lockedBuffer) waitFor(s string, stop <-chan struct{}, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		b.mu.Lock()
		if strings.Contains(b.buf.String(), s) {
			b.mu.Unlock()
			return true
		}
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-stop:
			return strings.Contains(b.String(), s)
		case <-timer.C:
			return false
		}
	}
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ferryMount is one running `ferry mount` process.
type ferryMount struct {
	t        *testing.T
	dir      string // the mount point
	cmd      *exec.Cmd
	out      *lockedBuffer
	metrics  string // metrics URL
	done     chan struct{}
	watchdog *time.Timer
}

// startMount mounts s at a fresh directory with the given extra flags and
// waits until the kernel shows the mount and ferry has logged it (the
// "mounted" line, with the memory bound, comes just after the kernel's).
func startMount(t *testing.T, s Store, flags ...string) *ferryMount {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return startMountAt(t, s, dir, flags...)
}

func startMountAt(t *testing.T, s Store, dir string, flags ...string) *ferryMount {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"mount", "--metrics-addr", addr}, flags...)
	args = append(args, s.URL, dir)
	m := &ferryMount{t: t, dir: dir, out: &lockedBuffer{}, metrics: "http://" + addr + "/metrics", done: make(chan struct{})}
	m.cmd = exec.Command(ferryBin, args...)
	m.cmd.Env = append(os.Environ(), s.Env...)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = m.cmd.Wait()
		close(m.done)
	}()
	m.watchdog = time.AfterFunc(mountLife, func() { _ = m.cmd.Process.Kill() })
	t.Cleanup(m.cleanup)
	// ferry logs "mounted" once the kernel has the mount and has made the
	// FUSE handshake.
	if !m.out.waitFor("msg=mounted", m.done, 60*time.Second) {
		if m.exited() {
			t.Fatalf("ferry mount exited (%v) before mounting:\n%s", m.cmd.ProcessState, m.out.String())
		}
		t.Fatalf("ferry mount logged no mount in 60s:\n%s", m.out.String())
	}
	if !isMountpoint(dir) {
		t.Fatalf("ferry mount logged the mount, but %s is not a mount point:\n%s", dir, m.out.String())
	}
	return m
}

// cleanup stops the process and removes the mount, whatever state the
// test left them in.
func (m *ferryMount) cleanup() {
	m.watchdog.Stop()
	if !m.exited() {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(15 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	}
	if isMountpoint(m.dir) {
		_ = exec.Command("fusermount3", "-u", "-z", m.dir).Run()
		_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
	}
	if m.t.Failed() {
		m.t.Logf("ferry mount output:\n%s", mountTail(m.out.String(), 6000))
	}
}

func (m *ferryMount) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits for the process to exit; it returns the
// output and the exit code.
func (m *ferryMount) stop(sig syscall.Signal) (string, int) {
	m.t.Helper()
	_ = m.cmd.Process.Signal(sig)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		m.t.Fatalf("ferry mount did not exit 30s after %v:\n%s", sig, m.out.String())
	}
	return m.out.String(), m.cmd.ProcessState.ExitCode()
}

// unmount stops the mount cleanly and checks it went away.
func (m *ferryMount) unmount() {
	m.t.Helper()
	out, code := m.stop(syscall.SIGTERM)
	if code != 0 || isMountpoint(m.dir) {
		m.t.Fatalf("unmount: exit %d, still mounted %v:\n%s", code, isMountpoint(m.dir), out)
	}
}

// path is name inside the mount.
func (m *ferryMount) path(name string) string { return filepath.Join(m.dir, filepath.FromSlash(name)) }

// scrape reads the mount's Prometheus metrics: series (name with labels,
// as exposed) to value.
func (m *ferryMount) scrape() map[string]float64 {
	m.t.Helper()
	resp, err := http.Get(m.metrics)
	if err != nil {
		m.t.Fatalf("scrape %s: %v", m.metrics, err)
	}
	defer resp.Body.Close()
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			got[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		m.t.Fatal(err)
	}
	return got
}

// requests returns the store requests of kind the mount made so far, as
// its metrics endpoint reports them.
func (m *ferryMount) requests(kind string) float64 {
	m.t.Helper()
	return m.scrape()[`ferry_store_requests_total{kind="`+kind+`"}`]
}

// isMountpoint reports whether dir is a ferry mount in /proc/self/mountinfo.
func isMountpoint(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == dir && strings.Contains(line, " - fuse.ferry ") {
			return true
		}
	}
	return false
}

// pollUntil polls cond every 20ms until it returns true, an error, or the
// timeout passes: for what only time brings about in another process (a
// metadata TTL running out).
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func mountTail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// putObjects stores objects (key -> content; keys ending in "/" are
// markers) through the store's in-process backend, 16 at a time.
func putObjects(t *testing.T, b backends.Backend, objs map[string][]byte) {
	t.Helper()
	putObjectsN(t, b, objs, 16)
}

// putObjectsN is putObjects with n at a time.
func putObjectsN(t *testing.T, b backends.Backend, objs map[string][]byte, n int) {
	t.Helper()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(n)
	for k, v := range objs {
		g.Go(func() error {
			if _, err := b.Put(ctx, k, bytes.NewReader(v), int64(len(v)), backends.PutOptions{}); err != nil {
				return fmt.Errorf("put %q: %w", k, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func randomData(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func shaOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// fileSHA256 hashes a file by streaming it.
func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// treeSums walks dir and returns every file's sha256 and every directory
// (as "name/": ""), by slash-separated path relative to dir.
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			got[rel+"/"] = ""
			return nil
		}
		s, _, err := fileSHA256(p)
		got[rel] = s
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// wantSums is the tree treeSums should find for objs: files with their
// sums, and every directory implied by a key or a marker.
func wantSums(objs map[string][]byte) map[string]string {
	want := map[string]string{}
	for k, v := range objs {
		if !strings.HasSuffix(k, "/") {
			want[k] = shaOf(v)
		}
		parts := strings.Split(strings.TrimSuffix(k, "/"), "/")
		n := len(parts) - 1
		if strings.HasSuffix(k, "/") {
			n = len(parts)
		}
		for i := 1; i <= n; i++ {
			want[strings.Join(parts[:i], "/")+"/"] = ""
		}
	}
	return want
}

// diffSums reports the differences between two trees of sums.
func diffSums(got, want map[string]string) []string {
	var d []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			d = append(d, "missing "+k)
		} else if g != v {
			d = append(d, "differs "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "unexpected "+k)
		}
	}
	return d
}

// procStatus reads a field (in KiB) of /proc/PID/status, such as VmHWM.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// runPeakRSS runs cmd to completion and returns its combined output and its
// peak resident set in KiB, sampled from VmHWM every 10ms (a high-water
// mark, so a late sample misses only the last milliseconds' growth). wait4's
// ru_maxrss would not do: Linux carries the parent's high-water mark over
// fork and exec, so a child of a large test binary reports at least the
// test binary's size.
func runPeakRSS(cmd *exec.Cmd) ([]byte, int64, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var peak int64
	for {
		if v, err := procStatus(cmd.Process.Pid, "VmHWM"); err == nil {
			peak = max(peak, v)
		}
		select {
		case err := <-done:
			return out.Bytes(), peak, err
		case <-tick.C:
		}
	}
}
