package storeurl

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want Location
	}{
		{"s3://bucket", Location{Provider: S3, Bucket: "bucket"}},
		{"s3://bucket/", Location{Provider: S3, Bucket: "bucket"}},
		{"s3://bucket/data", Location{Provider: S3, Bucket: "bucket", Prefix: "data/"}},
		{"s3://bucket/data/set/", Location{Provider: S3, Bucket: "bucket", Prefix: "data/set/"}},
		{"gs://b/p", Location{Provider: GCS, Bucket: "b", Prefix: "p/"}},
		{"az://c/p/q", Location{Provider: Azure, Bucket: "c", Prefix: "p/q/"}},
		{"file:///srv/data/", Location{Provider: Local, Bucket: "/srv/data"}},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{"", "bucket/prefix", "ftp://x/y", "s3://", "s3:///p", "file://host/x", "file://rel", "s3://user:pw@b/p"} {
		_, err := Parse(in)
		if !errors.Is(err, ErrConfig) {
			t.Errorf("Parse(%q) = %v, want ErrConfig", in, err)
		}
	}
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestFromEnv(t *testing.T) {
	got, err := FromEnv(env(map[string]string{
		EnvProvider: "s3", EnvBucket: "b", EnvPrefix: "runs/7",
		EnvEndpoint: "http://127.0.0.1:9000", EnvRegion: "eu-west-1", EnvKMSKeyID: "k1",
	}))
	want := Location{Provider: S3, Bucket: "b", Prefix: "runs/7/", Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1", KMSKeyID: "k1"}
	if err != nil || got != want {
		t.Fatalf("got %+v, %v", got, err)
	}
	got, err = FromEnv(env(map[string]string{EnvURL: "gs://b/p", EnvProvider: "gcs", EnvBucket: "b"}))
	if err != nil || got.Provider != GCS || got.Prefix != "p/" {
		t.Fatalf("URL with agreeing vars: %+v, %v", got, err)
	}
	got, err = FromEnv(env(map[string]string{EnvProvider: "local", EnvBucket: "/srv/store/", EnvPrefix: "ds"}))
	if err != nil || got.Bucket != "/srv/store" || got.Prefix != "ds/" || got.String() != "file:///srv/store/ds" {
		t.Fatalf("local: %+v %q, %v", got, got.String(), err)
	}
}

func TestFromEnvNoStore(t *testing.T) {
	for _, m := range []map[string]string{{}, {EnvProvider: ""}, {EnvProvider: " ", EnvBucket: "b"}} {
		if _, err := FromEnv(env(m)); !errors.Is(err, ErrNoStore) {
			t.Errorf("%v: err = %v, want ErrNoStore", m, err)
		}
	}
}

func TestFromEnvErrorsNameTheVariable(t *testing.T) {
	cases := []struct {
		env  map[string]string
		name string
	}{
		{map[string]string{EnvProvider: "s3"}, EnvBucket},
		{map[string]string{EnvProvider: "dropbox", EnvBucket: "b"}, EnvProvider},
		{map[string]string{EnvURL: "s3://b/p", EnvProvider: "gcs"}, EnvProvider},
		{map[string]string{EnvURL: "s3://b/p", EnvBucket: "other"}, EnvBucket},
		{map[string]string{EnvURL: "s3://b/p", EnvPrefix: "q"}, EnvPrefix},
		{map[string]string{EnvURL: "nonsense"}, EnvURL},
		{map[string]string{EnvProvider: "local", EnvBucket: "relative/dir"}, EnvBucket},
		{map[string]string{EnvProvider: "az", EnvBucket: "c", EnvEndpoint: "http://127.0.0.1:1"}, EnvEndpoint},
		{map[string]string{EnvProvider: "s3", EnvBucket: "b", EnvEndpoint: "127.0.0.1:9000"}, EnvEndpoint},
		{map[string]string{EnvProvider: "gcs", EnvBucket: "b", EnvRegion: "x"}, EnvRegion},
		{map[string]string{EnvProvider: "az", EnvBucket: "b", EnvKMSKeyID: "x"}, EnvKMSKeyID},
	}
	for _, c := range cases {
		_, err := FromEnv(env(c.env))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.name) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v; want a one-line ErrConfig naming %s", c.env, err, c.name)
		}
	}
}
