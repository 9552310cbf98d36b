package testenv

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

var (
	minio   *MinIO
	fakeGCS *FakeGCS
	azurite *Azurite
)

func TestMain(m *testing.M) {
	Main(m, func(e *Env) (err error) {
		if minio, err = e.MinIO(); err != nil {
			return err
		}
		if fakeGCS, err = e.FakeGCS(); err != nil {
			return err
		}
		azurite, err = e.Azurite()
		return err
	})
}

func TestServersServeBuckets(t *testing.T) {
	ctx := context.Background()
	name := BucketName(t)
	if err := minio.CreateBucket(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	v, err := minio.Client().GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(name)})
	if err != nil || v.Status != "Enabled" {
		t.Fatalf("versioning on %s: %v %v", name, v, err)
	}
	if err := fakeGCS.CreateBucket(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	if err := fakeGCS.CreateBucket(ctx, name, false); err == nil {
		t.Fatal("creating the same GCS bucket twice succeeded")
	}
	if err := azurite.CreateContainer(ctx, name); err != nil {
		t.Fatal(err)
	}
}

func TestBucketNameIsValidEverywhere(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		n := BucketName(t)
		if len(n) < 3 || len(n) > 63 || seen[n] {
			t.Fatalf("bad or repeated name %q", n)
		}
		seen[n] = true
	}
}

func TestVersionsArePinned(t *testing.T) {
	for _, k := range []string{"MINIO_VERSION", "FAKE_GCS_VERSION", "AZURITE_VERSION"} {
		if Versions()[k] == "" {
			t.Errorf("versions.env lacks %s", k)
		}
	}
}

func TestMinIOStatsCountRequests(t *testing.T) {
	ctx := context.Background()
	name := BucketName(t)
	if err := minio.CreateBucket(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	before, err := minio.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := minio.Client()
	for range 3 {
		if _, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
	}
	after, err := minio.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	if d.Requests["ListObjectsV2"] != 3 || d.SentBytes <= 0 {
		t.Fatalf("ListObjectsV2 delta = %v, sent %v (all: %v)", d.Requests["ListObjectsV2"], d.SentBytes, d.Requests)
	}
}
