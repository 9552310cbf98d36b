// Package e2e holds ferry's end-to-end tests: the real ferry binary against
// real servers (MinIO, fake-gcs-server, Azurite, a local directory) and real
// kernel mounts. TestMain starts the servers once; each test gets fresh
// buckets from Stores.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/backends/az"
	"github.com/ferryio/ferry/backends/gcs"
	"github.com/ferryio/ferry/backends/local"
	"github.com/ferryio/ferry/backends/prefix"
	"github.com/ferryio/ferry/backends/s3"
	"github.com/ferryio/ferry/integration/testenv"
)

var (
	minio   *testenv.MinIO
	fakeGCS *testenv.FakeGCS
	azurite *testenv.Azurite
	// ferryBin is the binary under test: $FERRY_BIN, else built by TestMain.
	ferryBin string
)

func TestMain(m *testing.M) {
	testenv.Main(m, func(e *testenv.Env) (err error) {
		if ferryBin, err = buildFerry(e.Dir); err != nil {
			return err
		}
		if minio, err = e.MinIO(); err != nil {
			return err
		}
		if fakeGCS, err = e.FakeGCS(); err != nil {
			return err
		}
		if azurite, err = e.Azurite(); err != nil {
			return err
		}
		// In-process clients (Store.Backend) reach the emulators the same
		// way the ferry processes do.
		os.Setenv("STORAGE_EMULATOR_HOST", fakeGCS.Host)
		os.Setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.ConnectionString)
		return nil
	})
}

func buildFerry(dir string) (string, error) {
	if p := os.Getenv("FERRY_BIN"); p != "" {
		return p, nil
	}
	out := filepath.Join(dir, "ferry")
	cmd := exec.Command("go", "build", "-tags", "disable_grpc_modules", "-o", out, "github.com/ferryio/ferry/cmd/ferry")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build ferry: %v: %s", err, b)
	}
	return out, nil
}

// Store is one fresh, empty bucket on one backend, as ferry's users name it.
type Store struct {
	Name string   // "s3", "gcs", "az", "local"
	URL  string   // store URL with the test's prefix, e.g. s3://bucket/data/
	Env  []string // environment the ferry process needs to reach it (endpoint, credentials)
	// Bucket is the bucket name (for local: the directory), Prefix the key prefix.
	Bucket, Prefix string
}

// Stores makes a fresh bucket on every backend and returns them, each
// with the key prefix "data/".
func Stores(t *testing.T) []Store {
	t.Helper()
	ctx := context.Background()
	name := testenv.BucketName(t)
	if err := minio.CreateBucket(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	if err := fakeGCS.CreateBucket(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	if err := azurite.CreateContainer(ctx, name); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	return []Store{
		{Name: "s3", URL: "s3://" + name + "/data/", Bucket: name, Prefix: "data/", Env: []string{
			"DATA_STORE_ENDPOINT=" + minio.Endpoint, "AWS_ACCESS_KEY_ID=" + minio.AccessKey,
			"AWS_SECRET_ACCESS_KEY=" + minio.SecretKey, "AWS_REGION=" + minio.Region}},
		{Name: "gcs", URL: "gs://" + name + "/data/", Bucket: name, Prefix: "data/", Env: []string{
			"STORAGE_EMULATOR_HOST=" + fakeGCS.Host}},
		{Name: "az", URL: "az://" + name + "/data/", Bucket: name, Prefix: "data/", Env: []string{
			"AZURE_STORAGE_CONNECTION_STRING=" + azurite.ConnectionString}},
		{Name: "local", URL: "file://" + dir + "/data", Bucket: dir + "/data", Prefix: "", Env: nil},
	}
}

// Ferry runs the ferry binary with args and extra env, and returns its
// combined output and exit code. A failure to start fails the test.
func Ferry(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("run ferry %v: %v", args, err)
	}
	return string(out), 0
}

// Backend opens the store in-process, seen through its prefix, for seeding
// objects and checking results without going through ferry.
func (s Store) Backend(t *testing.T) backends.Backend {
	t.Helper()
	ctx := context.Background()
	var (
		b   backends.Backend
		err error
	)
	switch s.Name {
	case "s3":
		b, err = s3.New(ctx, s3.Options{Bucket: s.Bucket, Endpoint: minio.Endpoint, Region: minio.Region,
			AccessKey: minio.AccessKey, SecretKey: minio.SecretKey})
	case "gcs":
		b, err = gcs.New(ctx, gcs.Options{Bucket: s.Bucket})
	case "az":
		b, err = az.New(ctx, az.Options{Container: s.Bucket, ConnectionString: azurite.ConnectionString})
	case "local":
		b, err = local.New(s.Bucket)
	default:
		t.Fatalf("unknown store %q", s.Name)
	}
	if err != nil {
		t.Fatalf("open %s: %v", s.Name, err)
	}
	return prefix.New(b, s.Prefix)
}
