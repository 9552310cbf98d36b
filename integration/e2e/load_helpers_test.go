package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/backends"
)

// Helpers of the load tests: seeding, reading trees back, a byte-counting
// TCP proxy in front of a server, and a ferry process that is killed at a
// chosen point of its progress.

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// seed stores files (key -> content; keys ending in "/" are markers) in the
// store through its in-process backend.
func seed(t *testing.T, b backends.Backend, files map[string][]byte) {
	t.Helper()
	for k, v := range files {
		if _, err := b.Put(context.Background(), k, bytes.NewReader(v), int64(len(v)), backends.PutOptions{}); err != nil {
			t.Fatalf("seed %q: %v", k, err)
		}
	}
}

// readTree reads dir back: files with their content, directories as
// "name/" with nil.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			got[rel+"/"] = nil
			return nil
		}
		b, err := os.ReadFile(p)
		got[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// expectTree checks that dir holds exactly want (files and directories).
func expectTree(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	got := readTree(t, dir)
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: missing from %s", k, dir)
		case !bytes.Equal(g, v):
			t.Errorf("%s: content differs (%d bytes, want %d)", k, len(g), len(v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: in %s but not expected", k, dir)
		}
	}
}

// listingRequests is the summary's "requests" field of a run that only
// listed objs: one LIST per directory (the prefix itself and every
// "dir/" above a key), as ferry lists a tree directory by directory.
func listingRequests(objs map[string][]byte) string {
	dirs := map[string]bool{"": true}
	for k := range objs {
		for i, c := range k {
			if c == '/' {
				dirs[k[:i+1]] = true
			}
		}
	}
	return fmt.Sprintf("LIST=%d", len(dirs))
}

// treeOf is the local tree a set of objects becomes: the files, the
// markers, and every parent directory.
func treeOf(objs map[string][]byte) map[string][]byte {
	want := map[string][]byte{}
	for k, v := range objs {
		isDir := strings.HasSuffix(k, "/")
		segs := strings.Split(strings.TrimSuffix(k, "/"), "/")
		n := len(segs) - 1
		if isDir {
			n = len(segs)
		}
		for i := 1; i <= n; i++ {
			want[strings.Join(segs[:i], "/")+"/"] = nil
		}
		if !isDir {
			want[k] = v
		}
	}
	return want
}

func datasetSize(objs map[string][]byte) int64 {
	var n int64
	for _, v := range objs {
		n += int64(len(v))
	}
	return n
}

// event is one JSON line of ferry's output (--log-format json).
type event struct {
	Event    string  `json:"event"`
	Msg      string  `json:"msg"`
	Key      string  `json:"key"`
	Requests string  `json:"requests"`
	Fetched  float64 `json:"fetched"`
	UpToDate float64 `json:"up_to_date"`
	Bytes    float64 `json:"bytes_read"`
	Digest   string  `json:"digest"`
	// PartsReused: store's summary, parts of resumed uploads found stored.
	PartsReused float64 `json:"parts_reused"`
}

// events parses ferry's JSON lines, ignoring any other line.
func events(out string) []event {
	var evs []event
	for _, line := range strings.Split(out, "\n") {
		var e event
		if json.Unmarshal([]byte(line), &e) == nil && e.Event != "" {
			evs = append(evs, e)
		}
	}
	return evs
}

// summary returns the final "done" (or "failed", "dry-run") event.
func summary(t *testing.T, out string) event {
	t.Helper()
	evs := events(out)
	for i := len(evs) - 1; i >= 0; i-- {
		switch evs[i].Event {
		case "done", "failed", "dry-run":
			return evs[i]
		}
	}
	t.Fatalf("no summary line in output:\n%s", out)
	return event{}
}

// counter is a TCP proxy in front of one server that counts the bytes the
// server sends to clients: what crossed the wire towards ferry, whatever
// ferry did with it before it was killed.
type counter struct {
	Addr string // host:port to give clients
	down atomic.Int64
}

func startCounter(t *testing.T, target string) *counter {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{Addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { c.serve(conn, target) })
		}
	})
	return c
}

func (c *counter) serve(client net.Conn, target string) {
	defer client.Close()
	server, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(server, client)
		server.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(countingWriter{client, &c.down}, server)
	client.(*net.TCPConn).CloseWrite()
	<-done
}

// Bytes is the number of bytes sent to clients so far.
func (c *counter) Bytes() int64 { return c.down.Load() }

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// proxied returns the environment that makes ferry reach s through a
// byte counter, or nil for the local store (no network).
func proxied(t *testing.T, s Store) ([]string, *counter) {
	t.Helper()
	switch s.Name {
	case "s3":
		c := startCounter(t, strings.TrimPrefix(minio.Endpoint, "http://"))
		return append(append([]string{}, s.Env...), "DATA_STORE_ENDPOINT=http://"+c.Addr), c
	case "gcs":
		c := startCounter(t, fakeGCS.Host)
		return []string{"STORAGE_EMULATOR_HOST=" + c.Addr}, c
	case "az":
		host := strings.TrimPrefix(strings.SplitN(azurite.BlobEndpoint, "/devstore", 2)[0], "http://")
		c := startCounter(t, host)
		return []string{"AZURE_STORAGE_CONNECTION_STRING=" + strings.Replace(azurite.ConnectionString, host, c.Addr, 1)}, c
	}
	return s.Env, nil
}

// killAt runs `ferry load` of s into dir (JSON output, debug events) and
// SIGKILLs it as soon as it has printed n events of kind, reading its
// output through a pipe of one page so that it cannot run far ahead of the
// reader. It returns false when ferry ended before that point.
func killAt(t *testing.T, env []string, kind string, n int, s Store, dir string) bool {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 4096); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ferryBin, loadArgs(s, dir, "--log-format", "json", "--log-level", "debug")...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	sc := bufio.NewScanner(r)
	seen := 0
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event == kind {
			if seen++; seen == n {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
	}
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
				return true
			}
		}
		return false
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("ferry did not end after SIGKILL")
	}
	return false
}
