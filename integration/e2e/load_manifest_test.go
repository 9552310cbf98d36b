package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryio/ferry/fs/load"
	"github.com/ferryio/ferry/integration/testenv"
)

// ferry load --manifest on stores that keep versions: a replay loads the
// recorded versions of objects replaced or deleted since.

// objectStore makes a fresh bucket for t on one object store ("s3" or
// "gcs"), keeping old versions or not, seen with the key prefix "data/",
// as Stores does for unversioned buckets.
func objectStore(t *testing.T, name string, versioned bool) Store {
	t.Helper()
	bucket := testenv.BucketName(t)
	var err error
	var s Store
	switch name {
	case "s3":
		err = minio.CreateBucket(context.Background(), bucket, versioned)
		s = Store{Name: name, URL: "s3://" + bucket + "/data/", Env: []string{
			"DATA_STORE_ENDPOINT=" + minio.Endpoint, "AWS_ACCESS_KEY_ID=" + minio.AccessKey,
			"AWS_SECRET_ACCESS_KEY=" + minio.SecretKey, "AWS_REGION=" + minio.Region}}
	case "gcs":
		err = fakeGCS.CreateBucket(context.Background(), bucket, versioned)
		s = Store{Name: name, URL: "gs://" + bucket + "/data/", Env: []string{"STORAGE_EMULATOR_HOST=" + fakeGCS.Host}}
	default:
		t.Fatalf("no versioning on store %q", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.Bucket, s.Prefix = bucket, "data/"
	return s
}

// snapshot loads s into a fresh directory with --manifest-out and returns
// the manifest file.
func snapshot(t *testing.T, s Store) string {
	t.Helper()
	manifest := filepath.Join(t.TempDir(), "snapshot.json")
	out, code := Ferry(t, s.Env, loadArgs(s, filepath.Join(t.TempDir(), "data"), "--manifest-out", manifest)...)
	if code != 0 {
		t.Fatalf("load --manifest-out: exit %d\n%s", code, out)
	}
	return manifest
}

func TestLoadManifestExactVersions(t *testing.T) {
	for _, name := range []string{"s3", "gcs"} {
		t.Run(name, func(t *testing.T) {
			s := objectStore(t, name, true)
			b := s.Backend(t)
			objs := map[string][]byte{
				"a.txt":    []byte("unchanged"),
				"d/b.txt":  []byte("first b"),
				"big.bin":  randomBytes(t, 3*loadPart+17),
				"gone.txt": []byte("deleted after the snapshot"),
				"empty":    {},
			}
			seed(t, b, objs)
			manifest := snapshot(t, s)
			m, err := load.ReadManifest(manifest)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Objects) != len(objs) {
				t.Fatalf("manifest of %d objects, want %d", len(m.Objects), len(objs))
			}
			for _, o := range m.Objects {
				if o.Version.ID == "" {
					t.Errorf("manifest entry %q has no version id on a versioned bucket: %+v", o.Key, o.Version)
				}
			}

			// Replace a small, a multi-part and an empty object (the last
			// with the same bytes: a new version all the same) and delete
			// one: the replay loads the snapshot's versions.
			seed(t, b, map[string][]byte{"d/b.txt": []byte("SECOND B!"), "big.bin": randomBytes(t, 3*loadPart+17), "empty": {}})
			if err := b.Delete(context.Background(), "gone.txt"); err != nil {
				t.Fatal(err)
			}
			seed(t, b, map[string][]byte{"later.txt": []byte("not in the snapshot")})
			dir := filepath.Join(t.TempDir(), "data")
			again := filepath.Join(t.TempDir(), "again.json")
			out, code := Ferry(t, s.Env, loadArgs(s, dir, "--log-format", "json", "--manifest", manifest, "--manifest-out", again)...)
			if code != 0 {
				t.Fatalf("replay: exit %d\n%s", code, out)
			}
			expectTree(t, dir, treeOf(objs))
			if sum := summary(t, out); sum.Fetched != float64(len(objs)) {
				t.Errorf("replay fetched %v files, want %d", sum.Fetched, len(objs))
			}
			sameSnapshot(t, name, manifest, again)

			// Again over the complete destination: the records name the
			// recorded versions, so the listing is the only request.
			out, code = Ferry(t, s.Env, loadArgs(s, dir, "--log-format", "json", "--manifest", manifest)...)
			if code != 0 {
				t.Fatalf("second replay: exit %d\n%s", code, out)
			}
			if sum, want := summary(t, out), listingRequests(objs); sum.Requests != want || sum.UpToDate != float64(len(objs)) || sum.Fetched != 0 {
				t.Errorf("second replay: requests %q, %v up to date, %v fetched; want %s, %d, 0",
					sum.Requests, sum.UpToDate, sum.Fetched, want, len(objs))
			}
			expectTree(t, dir, treeOf(objs))

			// A plain load brings the current objects back over the replay.
			if out, code := Ferry(t, s.Env, loadArgs(s, dir, "--delete")...); code != 0 {
				t.Fatalf("plain load after the replay: exit %d\n%s", code, out)
			}
			got := readTree(t, dir)
			if string(got["d/b.txt"]) != "SECOND B!" || got["gone.txt"] != nil || string(got["later.txt"]) != "not in the snapshot" {
				t.Errorf("plain load after the replay: d/b.txt %q, gone.txt %q, later.txt %q", got["d/b.txt"], got["gone.txt"], got["later.txt"])
			}
		})
	}
}

// sameSnapshot checks that the manifest written by a replay describes the
// snapshot replayed: the same objects, sizes, ETags and checksums, and the
// same version ids but for "empty", which was rewritten with the same
// bytes: on s3, whose listings carry no version ids, the replay knows it
// by its unchanged ETag, reads the current version and records its id.
func sameSnapshot(t *testing.T, store, replayed, written string) {
	t.Helper()
	want, err := load.ReadManifest(replayed)
	if err != nil {
		t.Fatal(err)
	}
	got, err := load.ReadManifest(written)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Objects) != len(want.Objects) {
		t.Fatalf("the replay's manifest has %d objects, want %d", len(got.Objects), len(want.Objects))
	}
	for i, g := range got.Objects {
		w := want.Objects[i]
		if store == "s3" && w.Key == "empty" {
			w.Version.ID = g.Version.ID
		}
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		if !bytes.Equal(gj, wj) {
			t.Errorf("the replay's manifest has %s, the replayed one %s", gj, wj)
		}
	}
}

// TestLoadManifestUnversioned replays on buckets that keep no old
// versions: an object replaced since the snapshot fails the run, naming
// the key, before anything is loaded. s3 records no version id there; gcs
// records generations, which the store no longer holds.
func TestLoadManifestUnversioned(t *testing.T) {
	for _, name := range []string{"s3", "gcs"} {
		t.Run(name, func(t *testing.T) {
			s := objectStore(t, name, false)
			b := s.Backend(t)
			seed(t, b, map[string][]byte{"a.txt": []byte("a"), "d/b.txt": []byte("first b")})
			manifest := snapshot(t, s)
			seed(t, b, map[string][]byte{"d/b.txt": []byte("SECOND B!")})
			dir := filepath.Join(t.TempDir(), "data")
			out, code := Ferry(t, s.Env, loadArgs(s, dir, "--manifest", manifest)...)
			if code != 1 || !strings.Contains(out, `"d/b.txt"`) || !strings.Contains(out, "changed since the manifest") {
				t.Errorf("replay of a replaced object: exit %d, want 1 naming d/b.txt\n%s", code, out)
			}
			if strings.Contains(out, `"a.txt"`) {
				t.Errorf("the failure names the unchanged a.txt:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(dir, "a.txt")); err == nil {
				t.Error("a.txt was loaded although the snapshot cannot be")
			}
		})
	}
}
