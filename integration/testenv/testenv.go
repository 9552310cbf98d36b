// Package testenv starts the real servers that ferry's tests talk to
// (MinIO, fake-gcs-server, Azurite), each on a free port of 127.0.0.1, from a
// test binary's TestMain, and stops them when the tests end, pass or fail.
//
// The binaries are the pinned versions of versions.env, installed by
// integration/tools/install.sh under ToolsDir(). When one is missing the
// package's tests are skipped, unless FERRY_REQUIRE_SERVERS=1 (which `make
// test` sets), when they fail.
//
//	var srv *testenv.MinIO
//
//	func TestMain(m *testing.M) {
//		testenv.Main(m, func(e *testenv.Env) (err error) {
//			srv, err = e.MinIO()
//			return err
//		})
//	}
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Env holds the servers started for one test binary.
type Env struct {
	Dir   string
	mu    sync.Mutex
	stops []func() // GUARDED_BY(mu)
}

func (e *Env) onStop(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stops = append(e.stops, f)
}

// MinIO starts a MinIO server for this test binary.
func (e *Env) MinIO() (*MinIO, error) {
	s, err := StartMinIO(e.Dir)
	if err != nil {
		return nil, err
	}
	e.onStop(s.Stop)
	return s, nil
}

// FakeGCS starts a fake-gcs-server for this test binary.
func (e *Env) FakeGCS() (*FakeGCS, error) {
	s, err := StartFakeGCS(e.Dir)
	if err != nil {
		return nil, err
	}
	e.onStop(s.Stop)
	return s, nil
}

// Azurite starts an azurite-blob for this test binary.
func (e *Env) Azurite() (*Azurite, error) {
	s, err := StartAzurite(e.Dir)
	if err != nil {
		return nil, err
	}
	e.onStop(s.Stop)
	return s, nil
}

// Stop stops every server, last started first.
func (e *Env) Stop() {
	e.mu.Lock()
	stops := e.stops
	e.stops = nil
	e.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

// Required reports whether a missing server must fail the tests
// (FERRY_REQUIRE_SERVERS=1) rather than skip them.
func Required() bool { return os.Getenv("FERRY_REQUIRE_SERVERS") == "1" }

// Main starts servers with start, runs the tests, stops the servers and
// exits. It never returns.
func Main(m *testing.M, start func(e *Env) error) {
	os.Exit(run(m, start))
}

func run(m *testing.M, start func(e *Env) error) int {
	dir, err := os.MkdirTemp("", "ferry-testenv-")
	if err != nil {
		fmt.Println("testenv:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	e := &Env{Dir: dir}
	defer e.Stop()
	if err := start(e); err != nil {
		if errors.Is(err, ErrNoBinary) && !Required() {
			fmt.Println("testenv: skipping, a server is missing:", err)
			return 0
		}
		fmt.Println("testenv: starting servers:", err)
		return 1
	}
	return m.Run()
}

var nameUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// BucketName returns a fresh bucket name, valid on every store (lower-case
// letters, digits and dashes, 3 to 63 characters), derived from the test name.
func BucketName(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	base := strings.Trim(nameUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(base) > 40 {
		base = base[len(base)-40:]
		base = strings.TrimLeft(base, "-")
	}
	if base == "" {
		base = "t"
	}
	return "f" + base + "-" + hex.EncodeToString(b[:])
}
