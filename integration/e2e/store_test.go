package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/fs/journal"
	"github.com/ferryio/ferry/fs/store"
	"github.com/ferryio/ferry/integration/testenv"
)

// storeTree makes a dataset with nested files, an empty file, an empty
// directory and one file of several parts, all with distinct mtimes
// (nanoseconds included), and returns the files by relative path.
func storeTree(t *testing.T, bigSize int) (string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"README.md":                 []byte("# dataset\n"),
		"train/part-0000.csv":       []byte("a,b\n1,2\n"),
		"train/nested/deep/x.json":  []byte(`{"x":true}`),
		"empty.txt":                 nil,
		"weights/model.safetensors": randomBytes(t, bigSize),
	}
	i := 0
	for rel, data := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Date(2024, 3, 1+i, 12, 0, 0, 123456789+i, time.UTC)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		i++
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs/empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, files
}

// sameTimedFiles checks that every file of want is in dir with the same bytes
// and the same mtime as in src.
func sameTimedFiles(t *testing.T, src, dir string, want map[string][]byte) {
	t.Helper()
	for rel, data := range want {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: content differs", rel)
		}
		a, _ := os.Stat(filepath.Join(src, rel))
		b, _ := os.Stat(filepath.Join(dir, rel))
		if !a.ModTime().Equal(b.ModTime()) {
			t.Fatalf("%s: mtime %v, want %v", rel, b.ModTime(), a.ModTime())
		}
	}
}

// requestCounts parses the summary's "requests" field ("LIST=1 PUT=3").
func requestCounts(t *testing.T, sum event) map[string]int {
	t.Helper()
	out := map[string]int{}
	s := sum.Requests
	if s == "none" {
		return out
	}
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("requests field %q", s)
		}
		out[k] = n
	}
	return out
}

// TestStoreLoadRoundTrip stores a dataset, loads it back byte-identical
// with its mtimes and empty directories, and checks that a second store
// makes listing requests only.
func TestStoreLoadRoundTrip(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			src, files := storeTree(t, 11<<20+7) // three parts of 5 MiB
			out, code := Ferry(t, s.Env, "store", "--part-size", "5MiB", "--log-format", "json", src, s.URL)
			if code != 0 {
				t.Fatalf("store: exit %d:\n%s", code, out)
			}
			if r := requestCounts(t, summary(t, out)); r["UPLOAD-PART"] != 3 || r["COMPLETE-UPLOAD"] != 1 {
				t.Fatalf("store requests %v, want 3 parts and one completion", r)
			}
			if _, err := os.Stat(filepath.Join(src, store.JournalDirName)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("journal left in DATA_DIR: %v", err)
			}
			dst := t.TempDir()
			if out, code := Ferry(t, s.Env, "load", s.URL, dst); code != 0 {
				t.Fatalf("load: exit %d:\n%s", code, out)
			}
			sameTimedFiles(t, src, dst, files)
			if fi, err := os.Stat(filepath.Join(dst, "logs/empty")); err != nil || !fi.IsDir() {
				t.Fatalf("empty directory not restored: %v", err)
			}

			var before testenv.ServerStats
			if s.Name == "s3" {
				before = minioStats(t)
			}
			out, code = Ferry(t, s.Env, "store", "--part-size", "5MiB", "--log-format", "json", src, s.URL)
			if code != 0 {
				t.Fatalf("second store: exit %d:\n%s", code, out)
			}
			for kind, n := range requestCounts(t, summary(t, out)) {
				if kind != "LIST" && kind != "LIST-UPLOADS" {
					t.Fatalf("second store made %d %s requests; want listings only:\n%s", n, kind, out)
				}
			}
			if s.Name == "s3" {
				d := minioStats(t).Sub(before)
				for api, n := range d.Requests {
					if !strings.HasPrefix(api, "List") {
						t.Fatalf("MinIO saw %v %s requests on the second store (all: %v)", n, api, d.Requests)
					}
				}
			}
		})
	}
}

func minioStats(t *testing.T) testenv.ServerStats {
	t.Helper()
	st, err := minio.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStoreKilledMidUpload kills ferry store (SIGKILL) while it sends the
// parts of a large file, checks that nothing is visible at the key, and
// that the re-run sends only the parts the store does not hold.
func TestStoreKilledMidUpload(t *testing.T) {
	const parts = 6
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			partSize := 1 << 20
			if s.Name == "s3" {
				partSize = 5 << 20 // S3's minimum
			}
			dir := t.TempDir()
			data := randomBytes(t, parts*partSize-1000)
			if err := os.WriteFile(filepath.Join(dir, "big.bin"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"store", "--part-size", strconv.Itoa(partSize), "--concurrency", "1", "--log-level", "debug", dir, s.URL}
			killAfterParts(t, s.Env, args, 2)

			b := s.Backend(t)
			ctx := context.Background()
			if _, err := b.Stat(ctx, "big.bin"); !errors.Is(err, backends.ErrNotExist) {
				t.Fatalf("after the kill, the key holds an object: %v", err)
			}
			stored := storedParts(t, b, filepath.Join(dir, store.JournalDirName), "big.bin")
			if stored < 2 || stored >= parts {
				t.Fatalf("the store holds %d parts after the kill, want 2..%d", stored, parts-1)
			}

			out, code := Ferry(t, s.Env, "store", "--part-size", strconv.Itoa(partSize), "--log-format", "json", dir, s.URL)
			if code != 0 {
				t.Fatalf("re-run: exit %d:\n%s", code, out)
			}
			// A part whose request was under way at the kill may still be
			// stored by the server afterwards: the re-run reuses at least
			// the parts seen stored, and sends only the others.
			sum := summary(t, out)
			sent, reused := requestCounts(t, sum)["UPLOAD-PART"], int(sum.PartsReused)
			if reused < stored || sent != parts-reused {
				t.Fatalf("re-run reused %d parts and sent %d; want %d or more reused (%d of %d were stored) and the rest sent:\n%s",
					reused, sent, stored, stored, parts, out)
			}
			t.Logf("killed with %d of %d parts stored; the re-run reused %d and sent %d", stored, parts, reused, sent)
			rc, _, err := b.GetRange(ctx, "big.bin", 0, -1, backends.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("final object differs from the file (%d bytes, err %v)", len(got), err)
			}
			if mp, ok := b.(backends.Multipart); ok {
				for u, err := range mp.ListUploads(ctx, "") {
					if err != nil {
						t.Fatal(err)
					}
					t.Fatalf("upload of %s still pending", u.Key)
				}
			}
			if journal.Exists(filepath.Join(dir, store.JournalDirName)) {
				t.Fatal("journal left after success")
			}
		})
	}
}

// TestStoreKilledThenChanged kills a multipart upload, changes the file,
// and checks that the re-run aborts the abandoned upload (with the
// driver's temporary parts) and stores the new content.
func TestStoreKilledThenChanged(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			partSize := 1 << 20
			if s.Name == "s3" {
				partSize = 5 << 20
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "big.bin")
			if err := os.WriteFile(path, randomBytes(t, 4*partSize), 0o644); err != nil {
				t.Fatal(err)
			}
			ps := strconv.Itoa(partSize)
			killAfterParts(t, s.Env, []string{"store", "--part-size", ps, "--concurrency", "1", "--log-level", "debug", dir, s.URL}, 1)
			now := randomBytes(t, 2*partSize+5)
			if err := os.WriteFile(path, now, 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := Ferry(t, s.Env, "store", "--part-size", ps, "--log-format", "json", dir, s.URL)
			if code != 0 {
				t.Fatalf("re-run: exit %d:\n%s", code, out)
			}
			if !strings.Contains(out, `"aborted_uploads":1`) {
				t.Fatalf("the abandoned upload was not aborted:\n%s", out)
			}
			b := s.Backend(t)
			ctx := context.Background()
			for u, err := range b.(backends.Multipart).ListUploads(ctx, "") {
				if err != nil {
					t.Fatal(err)
				}
				t.Fatalf("upload of %s still pending", u.Key)
			}
			rc, _, err := b.GetRange(ctx, "big.bin", 0, -1, backends.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, now) {
				t.Fatal("the object is not the file's new content")
			}
		})
	}
}

// TestStoreKilledSmallFiles SIGKILLs ferry store while it sends many
// files of one request each, and checks that
// the re-run sends exactly the files the store does not hold, every object
// ends up equal to its file, and no journal is left.
func TestStoreKilledSmallFiles(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			dir := t.TempDir()
			const files = 300
			want := map[string][]byte{}
			for i := range files {
				rel := fmt.Sprintf("dir-%d/obj-%03d.bin", i%10, i)
				want[rel] = randomBytes(t, 1000+i)
				if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, rel), want[rel], 0o644); err != nil {
					t.Fatal(err)
				}
			}
			killAfterLines(t, s.Env, []string{"store", "--concurrency", "2", "--log-level", "debug", dir, s.URL}, "file stored", 30)
			b := s.Backend(t)
			ctx := context.Background()
			stored := 0
			for _, err := range b.List(ctx, "") {
				if err != nil {
					t.Fatal(err)
				}
				stored++
			}
			if stored < 30 || stored >= files {
				t.Fatalf("the store holds %d of %d objects after the kill, want 30..%d", stored, files, files-1)
			}

			out, code := Ferry(t, s.Env, "store", "--concurrency", "2", "--log-format", "json", dir, s.URL)
			if code != 0 {
				t.Fatalf("re-run: exit %d:\n%s", code, out)
			}
			sum := summary(t, out)
			r := requestCounts(t, sum)
			// The (at most 2) requests in flight at the kill may still
			// be completed by the server after the listing above.
			if r["PUT"] > files-stored || r["PUT"] < files-stored-2 || r["PUT"]+int(sum.UpToDate) != files {
				t.Fatalf("re-run sent %d PUTs with %v up to date, want %d-%d PUTs and the rest up to date (%d of %d were listed after the kill):\n%s",
					r["PUT"], sum.UpToDate, files-stored-2, files-stored, stored, files, out)
			}
			// A file killed between its PUT and its sum record costs one
			// HEAD (on S3, whose listings lack the mtime), nothing more.
			if r["HEAD"] > 2 {
				t.Fatalf("re-run made %d HEADs, want at most 2 (the requests in flight at the kill)", r["HEAD"])
			}
			t.Logf("killed with %d of %d files stored; the re-run sent %d PUTs and %d HEADs", stored, files, r["PUT"], r["HEAD"])
			for rel, data := range want {
				rc, _, err := b.GetRange(ctx, rel, 0, -1, backends.ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s: the object differs from the file (err %v)", rel, err)
				}
			}
			if journal.Exists(filepath.Join(dir, store.JournalDirName)) {
				t.Fatal("journal left after success")
			}
		})
	}
}

// killAfterParts runs ferry with args and SIGKILLs it once its debug log
// has reported n parts stored.
func killAfterParts(t *testing.T, env, args []string, n int) {
	t.Helper()
	killAfterLines(t, env, args, "part stored", n)
}

// killAfterLines runs ferry with args and SIGKILLs it once n lines of its
// output have contained marker.
func killAfterLines(t *testing.T, env, args []string, marker string, n int) {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen []string
	sc := bufio.NewScanner(stdout)
	count := 0
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), marker) {
			if count++; count == n {
				cmd.Process.Kill()
				break
			}
		}
	}
	go io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if count < n {
		t.Fatalf("ferry ended (%v) before %d lines of %q:\n%s", err, n, marker, strings.Join(seen, "\n"))
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("ferry was not killed: %v", err)
	}
}

// storedParts opens the journal a killed run left and asks the store how
// many parts of key's upload it holds.
func storedParts(t *testing.T, b backends.Backend, jdir, key string) int {
	t.Helper()
	j, err := journal.Open(jdir)
	if err != nil {
		t.Fatalf("journal after the kill: %v", err)
	}
	e, ok := j.Entry(key)
	j.Close()
	if !ok || e.Upload == nil {
		t.Fatalf("journal has no upload for %s: %+v", key, e)
	}
	ps, err := b.(backends.Multipart).ListParts(context.Background(), *e.Upload)
	if err != nil {
		t.Fatal(err)
	}
	return len(ps)
}

// rcloneEnv configures the rclone remote "m" for MinIO, on the command
// line's environment only.
func rcloneEnv() []string {
	return []string{
		"RCLONE_CONFIG_M_TYPE=s3", "RCLONE_CONFIG_M_PROVIDER=Minio",
		"RCLONE_CONFIG_M_ENDPOINT=" + minio.Endpoint, "RCLONE_CONFIG_M_REGION=" + minio.Region,
		"RCLONE_CONFIG_M_ACCESS_KEY_ID=" + minio.AccessKey, "RCLONE_CONFIG_M_SECRET_ACCESS_KEY=" + minio.SecretKey,
		"RCLONE_CONFIG=/dev/null",
	}
}

func rcloneRun(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("rclone")
	if err != nil {
		if testenv.Required() {
			t.Fatal("rclone is not installed")
		}
		t.Skip("rclone is not installed")
	}
	cmd := exec.Command(bin, args...)
	// rclone 1.60 cannot build its HTTP client when AWS_CA_BUNDLE is set
	// (as integration/bench notes); MinIO is plain http, so rclone alone
	// runs without it. ferry always runs with it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, rcloneEnv()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rclone %v: %v\n%s", args, err, out)
	}
}

// TestStoreRcloneInterop: what ferry stores on S3, rclone copies back with
// the same bytes and mtimes; and what rclone stores, ferry finds up to date
// (it reads rclone's mtime), sending nothing.
func TestStoreRcloneInterop(t *testing.T) {
	s := Stores(t)[0]
	if s.Name != "s3" {
		t.Fatal("Stores(t)[0] is not s3")
	}
	src, files := storeTree(t, 6<<20+1) // two parts with 5 MiB parts
	if out, code := Ferry(t, s.Env, "store", "--part-size", "5MiB", src, s.URL); code != 0 {
		t.Fatalf("store: exit %d:\n%s", code, out)
	}
	dst := t.TempDir()
	rcloneRun(t, "copy", "m:"+s.Bucket+"/"+s.Prefix, dst)
	sameTimedFiles(t, src, dst, files)

	// rclone uploads a tree of its own; ferry store of the same tree to
	// the same place finds everything up to date.
	other, _ := storeTree(t, 1<<20)
	if err := os.RemoveAll(filepath.Join(other, "logs")); err != nil { // rclone stores no empty directories
		t.Fatal(err)
	}
	rcloneRun(t, "copy", other, "m:"+s.Bucket+"/rclone/")
	url := "s3://" + s.Bucket + "/rclone/"
	out, code := Ferry(t, s.Env, "store", "--log-format", "json", other, url)
	if code != 0 {
		t.Fatalf("store over rclone's copy: exit %d:\n%s", code, out)
	}
	sum := summary(t, out)
	if r := requestCounts(t, sum); r["PUT"] != 0 || r["UPLOAD-PART"] != 0 || sum.UpToDate != float64(len(files)) {
		t.Fatalf("ferry re-sent rclone's files (requests %v, summary %v):\n%s", r, sum, out)
	}
}

// TestStoreScript runs images/store.sh as a container would: DATA_DIR and
// DATA_STORE_URL in the environment, progress and errors on stdout.
func TestStoreScript(t *testing.T) {
	script, err := filepath.Abs("../../images/store.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			src, _ := storeTree(t, 1000)
			run := func(env ...string) (string, int) {
				cmd := exec.Command(script)
				cmd.Env = append(append(os.Environ(), s.Env...), env...)
				cmd.Env = append(cmd.Env, "PATH="+filepath.Dir(ferryBin)+":"+os.Getenv("PATH"))
				var stdout bytes.Buffer
				cmd.Stdout = &stdout // stderr stays unset: the script must send it all to stdout
				err := cmd.Run()
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return stdout.String(), ee.ExitCode()
				}
				if err != nil {
					t.Fatal(err)
				}
				return stdout.String(), 0
			}
			out, code := run("DATA_DIR="+src, "DATA_STORE_URL="+s.URL)
			if code != 0 || !strings.Contains(out, "store: done") {
				t.Fatalf("store.sh: exit %d:\n%s", code, out)
			}
			// Idempotent: a second run succeeds and uploads nothing.
			out, code = run("DATA_DIR="+src, "DATA_STORE_URL="+s.URL)
			if code != 0 || !strings.Contains(out, "uploaded 0") {
				t.Fatalf("second store.sh: exit %d:\n%s", code, out)
			}
			// A failure exits non-zero with the reason on stdout.
			out, code = run("DATA_DIR="+filepath.Join(src, "missing"), "DATA_STORE_URL="+s.URL)
			if code == 0 || !strings.Contains(out, "missing") {
				t.Fatalf("store.sh with a missing DATA_DIR: exit %d:\n%s", code, out)
			}
		})
	}
}
