package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const startTimeout = 60 * time.Second

// MinIO is a running MinIO server on 127.0.0.1.
type MinIO struct {
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
	Region    string
	Dir       string // data directory
	proc      *process
}

// StartMinIO starts the pinned MinIO with its data under dir.
func StartMinIO(dir string) (*MinIO, error) {
	bin, err := MinIOBinary()
	if err != nil {
		return nil, err
	}
	m := &MinIO{AccessKey: "ferrytest", SecretKey: "ferrytest-secret", Region: "us-east-1", Dir: filepath.Join(dir, "minio-data")}
	env := []string{
		"MINIO_ROOT_USER=" + m.AccessKey, "MINIO_ROOT_PASSWORD=" + m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CALLHOME_ENABLE=off",
		"MINIO_REGION=" + m.Region, "MINIO_PROMETHEUS_AUTH_TYPE=public",
	}
	p, port, err := startWithRetry(func(port int) (*process, error) {
		console, err := FreePort()
		if err != nil {
			return nil, err
		}
		p, err := startProcess(dir, "minio", bin, []string{"server", m.Dir, "--quiet",
			"--address", hostPort(port), "--console-address", hostPort(console)}, env)
		if err != nil {
			return nil, err
		}
		url := "http://" + hostPort(port) + "/minio/health/live"
		if err := p.waitHTTP(url, func(s int) bool { return s == http.StatusOK }, startTimeout); err != nil {
			p.stop()
			return nil, err
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	m.proc, m.Endpoint = p, "http://"+hostPort(port)
	return m, nil
}

// Client returns a plain SDK client for the server, for test set-up.
func (m *MinIO) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       m.Region,
		BaseEndpoint: aws.String(m.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
		HTTPClient:   awshttp.NewBuildableClient(),
	})
}

// CreateBucket creates a bucket, with versioning on when versioned.
func (m *MinIO) CreateBucket(ctx context.Context, name string, versioned bool) error {
	c := m.Client()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	if !versioned {
		return nil
	}
	_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(name),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	})
	return err
}

// Stop stops the server.
func (m *MinIO) Stop() { m.proc.stop() }

// FakeGCS is a running fake-gcs-server on 127.0.0.1 (HTTP, in memory).
type FakeGCS struct {
	Host string // 127.0.0.1:port, the value for STORAGE_EMULATOR_HOST
	proc *process
}

// StartFakeGCS starts the pinned fake-gcs-server.
func StartFakeGCS(dir string) (*FakeGCS, error) {
	bin, err := FakeGCSBinary()
	if err != nil {
		return nil, err
	}
	p, port, err := startWithRetry(func(port int) (*process, error) {
		hp := hostPort(port)
		p, err := startProcess(dir, "fake-gcs-server", bin, []string{"-scheme", "http", "-host", "127.0.0.1",
			"-port", fmt.Sprint(port), "-backend", "memory", "-public-host", hp,
			"-external-url", "http://" + hp, "-log-level", "error"}, nil)
		if err != nil {
			return nil, err
		}
		if err := p.waitHTTP("http://"+hp+"/storage/v1/b", func(s int) bool { return s == http.StatusOK }, startTimeout); err != nil {
			p.stop()
			return nil, err
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	return &FakeGCS{Host: hostPort(port), proc: p}, nil
}

// CreateBucket creates a bucket through the JSON API.
func (g *FakeGCS) CreateBucket(ctx context.Context, name string, versioned bool) error {
	body, _ := json.Marshal(map[string]any{"name": name, "versioning": map[string]bool{"enabled": versioned}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+g.Host+"/storage/v1/b?project=ferry-test", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("create bucket %s: %s: %s", name, resp.Status, msg)
	}
	return nil
}

// Stop stops the server.
func (g *FakeGCS) Stop() { g.proc.stop() }

// Azurite's well-known development account (public, documented by Microsoft).
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azurite is a running azurite-blob on 127.0.0.1.
type Azurite struct {
	ConnectionString string
	BlobEndpoint     string
	proc             *process
}

// StartAzurite starts the pinned azurite-blob with its data under dir.
func StartAzurite(dir string) (*Azurite, error) {
	bin, err := AzuriteBinary()
	if err != nil {
		return nil, err
	}
	loc := filepath.Join(dir, "azurite-data")
	if err := os.MkdirAll(loc, 0o755); err != nil {
		return nil, err
	}
	p, port, err := startWithRetry(func(port int) (*process, error) {
		p, err := startProcess(dir, "azurite", bin, []string{"--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
			"--location", loc, "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent"}, nil)
		if err != nil {
			return nil, err
		}
		// Any HTTP answer (an auth error included) means it is serving.
		if err := p.waitHTTP("http://"+hostPort(port)+"/"+azuriteAccount+"?comp=list", func(int) bool { return true }, startTimeout); err != nil {
			p.stop()
			return nil, err
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	ep := "http://" + hostPort(port) + "/" + azuriteAccount
	return &Azurite{
		BlobEndpoint: ep,
		ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + azuriteAccount +
			";AccountKey=" + azuriteKey + ";BlobEndpoint=" + ep + ";",
		proc: p,
	}, nil
}

// CreateContainer creates a blob container.
func (a *Azurite) CreateContainer(ctx context.Context, name string) error {
	c, err := azblob.NewClientFromConnectionString(a.ConnectionString, nil)
	if err != nil {
		return err
	}
	if _, err := c.CreateContainer(ctx, name, nil); err != nil {
		return fmt.Errorf("create container %s: %w", name, err)
	}
	return nil
}

// Stop stops the server.
func (a *Azurite) Stop() { a.proc.stop() }
