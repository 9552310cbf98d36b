package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferryio/ferry/backends"
)

// ferry load against every store: the real binary, real servers.

const loadPart = 64 << 10 // --part-size of these tests: many parts from little data

// loadArgs is `ferry load` with small parts and two GETs in flight, flags,
// then URL and DIR.
func loadArgs(s Store, dir string, flags ...string) []string {
	args := append([]string{"load", "--part-size", "64KiB", "--concurrency", "2"}, flags...)
	return append(args, s.URL, dir)
}

func TestLoadRoundTrip(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			objs := map[string][]byte{
				"top.txt":             []byte("top"),
				"empty.txt":           {},
				"nested/a/b/c.bin":    randomBytes(t, 5000),
				"nested/empty-dir/":   {},
				"empty-top/":          {},
				"ünïcødé/名前 ✓.txt":    []byte("unicode"),
				"big/model.ckpt":      randomBytes(t, 5*loadPart+321),
				"big/exactly-two.bin": randomBytes(t, 2*loadPart),
			}
			seed(t, s.Backend(t), objs)
			dir := filepath.Join(t.TempDir(), "data")
			out, code := Ferry(t, s.Env, loadArgs(s, dir, "--log-format", "json")...)
			if code != 0 {
				t.Fatalf("load: exit %d\n%s", code, out)
			}
			expectTree(t, dir, treeOf(objs))
			if sum := summary(t, out); sum.Fetched != 6 {
				t.Errorf("first load fetched %v files, want 6", sum.Fetched)
			}

			// Again through the container contract (env, load.sh): a
			// complete DATA_DIR costs the listing, no GET or HEAD.
			bin := filepath.Join(t.TempDir(), "bin")
			if err := os.Mkdir(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(ferryBin, filepath.Join(bin, "ferry")); err != nil {
				t.Fatal(err)
			}
			loadSh, err := filepath.Abs("../../images/load.sh")
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(loadSh, "--log-format", "json")
			cmd.Env = append(os.Environ(), s.Env...)
			cmd.Env = append(cmd.Env, "DATA_DIR="+dir, "DATA_STORE_URL="+s.URL, "PATH="+bin+":"+os.Getenv("PATH"))
			b, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("load.sh: %v\n%s", err, b)
			}
			sum := summary(t, string(b))
			if want := listingRequests(objs); sum.Requests != want || sum.UpToDate != 6 || sum.Fetched != 0 {
				t.Errorf("re-run: requests %q, %v up to date, %v fetched; want %s, 6, 0", sum.Requests, sum.UpToDate, sum.Fetched, want)
			}
			expectTree(t, dir, treeOf(objs))
		})
	}
}

// presentBytes is what a killed run left that a re-run need not fetch:
// files complete at their place, and parts recorded in resume journals.
func presentBytes(t *testing.T, dir string, objs map[string][]byte) int64 {
	t.Helper()
	var n int64
	for k, v := range objs {
		if b, err := os.ReadFile(filepath.Join(dir, k)); err == nil && string(b) == string(v) {
			n += int64(len(v))
		}
	}
	journals, _ := filepath.Glob(filepath.Join(dir, ".ferry-load", "*.json"))
	for _, j := range journals {
		b, err := os.ReadFile(j)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Size     int64 `json:"size"`
			PartSize int64 `json:"part_size"`
			Done     []int `json:"done"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("%s: %v", j, err)
		}
		for _, p := range st.Done {
			n += min(st.PartSize, st.Size-int64(p)*st.PartSize)
		}
	}
	return n
}

func TestLoadKillAndResume(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			objs := map[string][]byte{}
			for i := range 2 {
				objs[fmt.Sprintf("large/%d.bin", i)] = randomBytes(t, 32*loadPart)
			}
			for i := range 32 {
				objs[fmt.Sprintf("small/%02d.bin", i)] = randomBytes(t, 16<<10)
			}
			total := datasetSize(objs)
			seed(t, s.Backend(t), objs)
			env, wire := proxied(t, s)
			dir := filepath.Join(t.TempDir(), "data")
			for _, at := range []struct {
				kind string
				n    int
			}{{"part", 8}, {"part", 20}, {"part", 30}} {
				if !killAt(t, env, at.kind, at.n, s, dir) {
					t.Fatalf("ferry ended before its %d-th %q event: no kill", at.n, at.kind)
				}
			}
			have := presentBytes(t, dir, objs)
			if have == 0 || have == total {
				t.Fatalf("after the kills %d of %d bytes are in place: not a mid-transfer kill", have, total)
			}
			out, code := Ferry(t, env, loadArgs(s, dir, "--log-format", "json")...)
			if code != 0 {
				t.Fatalf("re-run: exit %d\n%s", code, out)
			}
			expectTree(t, dir, treeOf(objs))
			sum := summary(t, out)
			t.Logf("%s: %d of %d bytes in place after the kills; the re-run read %v", s.Name, have, total, sum.Bytes)
			if int64(sum.Bytes) > total-have {
				t.Errorf("re-run fetched %v bytes; %d of %d were in place, so at most %d were missing", sum.Bytes, have, total, total-have)
			}
			if wire != nil {
				ratio := float64(wire.Bytes()) / float64(total)
				t.Logf("%s: %d bytes on the wire for a %d-byte dataset over 3 kills and a re-run: %.3fx", s.Name, wire.Bytes(), total, ratio)
				if ratio > 1.25 {
					t.Errorf("transferred %.3fx the dataset, want at most 1.25x", ratio)
				}
			}
		})
	}
}

func TestLoadReplacedBetweenKillAndRerun(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			b := s.Backend(t)
			seed(t, b, map[string][]byte{"big.bin": randomBytes(t, 16*loadPart)})
			dir := filepath.Join(t.TempDir(), "data")
			if !killAt(t, s.Env, "part", 4, s, dir) {
				t.Fatal("ferry ended before the kill")
			}
			fresh := map[string][]byte{"big.bin": randomBytes(t, 16*loadPart)}
			seed(t, b, fresh)
			out, code := Ferry(t, s.Env, loadArgs(s, dir, "--log-format", "json")...)
			if code != 0 {
				t.Fatalf("re-run: exit %d\n%s", code, out)
			}
			expectTree(t, dir, treeOf(fresh))
			if sum := summary(t, out); int64(sum.Bytes) != 16*loadPart {
				t.Errorf("re-run fetched %v bytes, want the whole new version (%d)", sum.Bytes, 16*loadPart)
			}
		})
	}
}

func TestLoadHostileKeys(t *testing.T) {
	hostile := []string{
		"../escape.txt", "sub/../../escape2.txt", "/abs-ferry-load-test.txt", "a//b.txt",
		"./dot.txt", "dot/./x.txt", "nul\x00byte.txt", "conflict", "conflict/child.txt",
		strings.Repeat("n", 300) + ".txt", ".ferry-load/evil.json",
	}
	if _, err := os.Lstat("/abs-ferry-load-test.txt"); err == nil {
		t.Fatal("/abs-ferry-load-test.txt exists before the test")
	}
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			ctx := context.Background()
			b := s.Backend(t)
			seed(t, b, map[string][]byte{"good.txt": []byte("good")})
			want := map[string]bool{}
			for _, k := range hostile {
				if _, err := b.Put(ctx, k, strings.NewReader("x"), 1, backends.PutOptions{}); err != nil {
					t.Logf("%s does not hold %q: %v", s.Name, k, err)
					continue
				}
				want[k] = true
			}
			// Keep only what the store lists verbatim: some normalise a
			// key on the way in, or hide one of a file/directory pair.
			held := map[string]bool{}
			for e, err := range b.List(ctx, "") {
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case e.Key == "good.txt":
				case want[e.Key]:
					held[e.Key] = true
				default:
					t.Logf("%s normalised a key to %q; removing it", s.Name, e.Key)
					if err := b.Delete(ctx, e.Key); err != nil {
						t.Fatal(err)
					}
				}
			}
			// "conflict" is hostile only next to "conflict/child.txt" (MinIO
			// stores both but lists one, and the other after a delete).
			if held["conflict"] != held["conflict/child.txt"] {
				for _, k := range []string{"conflict", "conflict/child.txt"} {
					delete(held, k)
					if err := b.Delete(ctx, k); err != nil {
						t.Fatal(err)
					}
				}
				for e, err := range b.List(ctx, "conflict") {
					if err != nil || e.Key != "" {
						t.Fatalf("after deleting the conflicting pair the store lists %q, %v", e.Key, err)
					}
				}
			}
			if len(held) == 0 {
				t.Fatalf("%s holds none of the hostile keys", s.Name)
			}
			t.Logf("%s holds %d hostile keys", s.Name, len(held))
			base := t.TempDir()
			dir := filepath.Join(base, "data")
			out, code := Ferry(t, s.Env, loadArgs(s, dir)...)
			if code != 3 {
				t.Fatalf("exit %d, want 3 (invalid keys)\n%s", code, out)
			}
			for k := range held {
				if !strings.Contains(out, strconv.Quote(k)) {
					t.Errorf("output does not name %q", k)
				}
			}
			expectTree(t, base, map[string][]byte{"data/": nil, "data/good.txt": []byte("good")})
			if _, err := os.Lstat("/abs-ferry-load-test.txt"); err == nil {
				t.Error("an absolute key was written at /")
			}
			out, code = Ferry(t, s.Env, loadArgs(s, dir, "--skip-invalid-keys")...)
			if code != 0 {
				t.Errorf("--skip-invalid-keys: exit %d\n%s", code, out)
			}
			expectTree(t, base, map[string][]byte{"data/": nil, "data/good.txt": []byte("good")})
		})
	}
}

func TestLoadDryRun(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			seed(t, s.Backend(t), map[string][]byte{"a.txt": []byte("a"), "d/b.txt": []byte("b")})
			dir := filepath.Join(t.TempDir(), "data")
			step := func(want int, flags ...string) {
				t.Helper()
				out, code := Ferry(t, s.Env, loadArgs(s, dir, flags...)...)
				if code != want {
					t.Fatalf("load %v: exit %d, want %d\n%s", flags, code, want, out)
				}
			}
			step(4, "--dry-run")
			if _, err := os.Stat(dir); err == nil {
				t.Fatal("a dry run created DATA_DIR")
			}
			step(0)
			step(0, "--dry-run")
			if err := os.Remove(filepath.Join(dir, "d/b.txt")); err != nil {
				t.Fatal(err)
			}
			step(4, "--dry-run")
			if _, err := os.Stat(filepath.Join(dir, "d/b.txt")); err == nil {
				t.Fatal("a dry run repaired a file")
			}
			step(0)
			if err := os.WriteFile(filepath.Join(dir, "extra.txt"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			step(0, "--dry-run")
			step(4, "--dry-run", "--delete")
			step(0, "--delete")
			step(0, "--dry-run", "--delete")
		})
	}
}

func TestLoadManifestReplay(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			b := s.Backend(t)
			objs := map[string][]byte{"a.txt": []byte("a"), "d/b.txt": []byte("b"), "big.bin": randomBytes(t, 3*loadPart)}
			seed(t, b, objs)
			manifest := filepath.Join(t.TempDir(), "snapshot.json")
			out, code := Ferry(t, s.Env, loadArgs(s, filepath.Join(t.TempDir(), "data"), "--log-format", "json", "--manifest-out", manifest)...)
			if code != 0 {
				t.Fatalf("load: exit %d\n%s", code, out)
			}
			raw, err := os.ReadFile(manifest)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(raw)
			var digest string
			for _, e := range events(out) {
				if e.Event == "manifest" {
					digest = e.Digest
				}
			}
			if digest != "sha256:"+hex.EncodeToString(sum[:]) {
				t.Errorf("printed digest %q is not the file's sha256 %x", digest, sum)
			}

			seed(t, b, map[string][]byte{"later.txt": []byte("not in the snapshot")})
			dir := filepath.Join(t.TempDir(), "data")
			if out, code := Ferry(t, s.Env, loadArgs(s, dir, "--manifest", manifest)...); code != 0 {
				t.Fatalf("replay: exit %d\n%s", code, out)
			}
			expectTree(t, dir, treeOf(objs))

			seed(t, b, map[string][]byte{"d/b.txt": []byte("B")})
			out, code = Ferry(t, s.Env, loadArgs(s, filepath.Join(t.TempDir(), "data"), "--manifest", manifest)...)
			if code != 1 || !strings.Contains(out, `"d/b.txt"`) || !strings.Contains(out, "changed") {
				t.Errorf("replay of a changed object: exit %d, want 1 naming d/b.txt\n%s", code, out)
			}
		})
	}
}

func TestLoadPreDownloadedMode(t *testing.T) {
	dir := t.TempDir()
	out, code := Ferry(t, []string{"DATA_STORE_PROVIDER=", "DATA_DIR=" + dir}, "load")
	if code != 0 || !strings.Contains(out, "pre-downloaded") {
		t.Errorf("existing DATA_DIR: exit %d\n%s", code, out)
	}
	out, code = Ferry(t, []string{"DATA_STORE_PROVIDER=", "DATA_DIR=" + filepath.Join(dir, "missing")}, "load")
	if code == 0 {
		t.Errorf("missing DATA_DIR: exit 0\n%s", out)
	}
}

// TestLoadMemoryBound loads one object much larger than the documented
// transfer memory (2 x concurrency x 1 MiB = 32 MiB at the defaults) and
// checks the process's peak RSS stays well below the object's size.
func TestLoadMemoryBound(t *testing.T) {
	const size = 160 << 20
	bucket := t.TempDir()
	if err := os.Mkdir(filepath.Join(bucket, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(bucket, "data", "huge.bin"))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse, except for some bytes at both ends and in the middle.
	for _, off := range []int64{0, size / 2, size - 4096} {
		if _, err := f.WriteAt(randomBytes(t, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(ferryBin, "load", "file://"+bucket+"/data", dir)
	out, peakKiB, err := runPeakRSS(cmd)
	if err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	rss := peakKiB << 10
	t.Logf("peak RSS %d MiB loading a %d MiB object", rss>>20, size>>20)
	if rss > size/2 {
		t.Errorf("peak RSS %d MiB for a %d MiB object: memory is not bounded", rss>>20, size>>20)
	}
	if want, got := fileSum(t, filepath.Join(bucket, "data", "huge.bin")), fileSum(t, filepath.Join(dir, "huge.bin")); got != want {
		t.Errorf("loaded copy has sha256 %s, want %s", got, want)
	}
}

func fileSum(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
