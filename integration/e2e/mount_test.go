package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/integration/testenv"
)

// The block size of most mount tests: many blocks from little data.
const (
	mountBlock     = 256 << 10
	mountBlockFlag = "256KiB"
)

// mountTree is a small tree with sizes around block boundaries, an empty
// object, a directory marker, odd names and a directory of many files.
func mountTree(t *testing.T) map[string][]byte {
	objs := map[string][]byte{
		"empty.bin":               {},
		"one.txt":                 []byte("1"),
		"dir/a.bin":               randomData(t, mountBlock-1),
		"dir/b.bin":               randomData(t, mountBlock+1),
		"dir/sub/deep.bin":        randomData(t, 3*mountBlock+mountBlock/2),
		"big.bin":                 randomData(t, 24*mountBlock+17),
		"marked/":                 nil,
		"with space/ünï ファイル.txt": []byte("weird"),
	}
	for i := range 40 {
		objs[fmt.Sprintf("many/f%02d.bin", i)] = randomData(t, 1000+i*5000)
	}
	return objs
}

func TestMountReadsMatchStore(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			objs := mountTree(t)
			putObjects(t, s.Backend(t), objs)
			m := startMount(t, s, "--block-size", mountBlockFlag)
			big := objs["big.bin"]
			blocks := float64((len(big) + mountBlock - 1) / mountBlock)

			// Many readers of one cold file: each block fetched once,
			// shared (readahead fetches runs of blocks per GET).
			readersAgree(t, 16, func(int) (string, []byte) { return m.path("big.bin"), big })
			mt := m.scrape()
			fetched, gets := mt["ferry_store_read_bytes_total"], mt[`ferry_store_requests_total{kind="GET"}`]
			if fetched < float64(len(big)) || fetched > float64(len(big)+2*mountBlock) || gets > blocks {
				t.Errorf("16 readers of a %d-byte, %v-block file fetched %v bytes in %v GETs, want each block once",
					len(big), blocks, fetched, gets)
			}
			// Many readers of many files, twice each, cold then from the
			// block cache (the page cache dropped in between).
			var names []string
			for k := range objs {
				if strings.HasPrefix(k, "many/") {
					names = append(names, k)
				}
			}
			for range 2 {
				readersAgree(t, 2*len(names), func(i int) (string, []byte) {
					k := names[i%len(names)]
					return m.path(k), objs[k]
				})
			}
			randomReads(t, m.path("big.bin"), big, 500)

			if d := diffSums(treeSums(t, m.dir), wantSums(objs)); len(d) > 0 {
				t.Fatalf("the mount differs from the store: %q", d)
			}
			for k, v := range objs {
				fi, err := os.Stat(m.path(k))
				if err != nil {
					t.Fatal(err)
				}
				mode := os.FileMode(0o444)
				if strings.HasSuffix(k, "/") {
					mode = os.ModeDir | 0o555
				}
				if fi.Mode() != mode || (!fi.IsDir() && fi.Size() != int64(len(v))) {
					t.Errorf("%s: mode %v size %d, want %v %d", k, fi.Mode(), fi.Size(), mode, len(v))
				}
			}
			if err := os.WriteFile(m.path("one.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
				t.Errorf("writing a file: %v, want EROFS", err)
			}
			m.unmount()
		})
	}
}

// readersAgree runs n concurrent readers, reader i reading the file and
// content file(i) gives, after dropping the file's pages from the page
// cache so that the reads reach the mount.
func readersAgree(t *testing.T, n int, file func(i int) (string, []byte)) {
	t.Helper()
	var g errgroup.Group
	for i := range n {
		path, want := file(i)
		g.Go(func() error {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			got, _, err := fileSHA256(path)
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			if got != shaOf(want) {
				return fmt.Errorf("%s: sha256 differs from the store's", path)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// randomReads checks n reads at random offsets and of random lengths
// (across blocks, at the end) against want, without kernel readahead.
func randomReads(t *testing.T, path string, want []byte, n int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(7, uint64(len(want))))
	buf := make([]byte, 3*mountBlock)
	for i := range n {
		off := rng.Int64N(int64(len(want)) + 10)
		size := 1 + rng.IntN(len(buf))
		if i%10 == 0 {
			size = 4096
		}
		got, err := f.ReadAt(buf[:size], off)
		end := min(off+int64(size), int64(len(want)))
		if off >= int64(len(want)) {
			end = off
		}
		if err != nil && !(errors.Is(err, io.EOF) && int64(got) == end-off) {
			t.Fatalf("read %d at %d: %d bytes, %v", size, off, got, err)
		}
		if !bytes.Equal(buf[:got], want[off:end]) {
			t.Fatalf("read %d at %d: bytes differ from the store's", size, off)
		}
	}
}

func TestMountHidesUnsafeKeys(t *testing.T) {
	hostile := []string{
		"../escape.txt", "sub/../../escape2.txt", "/abs.txt", "a//b.txt", "./dot.txt",
		"dot/./x.txt", strings.Repeat("n", 300) + ".txt", "conflict", "conflict/child.txt",
	}
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			ctx := context.Background()
			b := s.Backend(t)
			putObjects(t, b, map[string][]byte{"good.txt": []byte("good")})
			held := map[string]bool{}
			for _, k := range hostile {
				if _, err := b.Put(ctx, k, strings.NewReader("x"), 1, backends.PutOptions{}); err == nil {
					held[k] = true
				}
			}
			// Keep only what the store lists verbatim.
			listed := map[string]bool{}
			for e, err := range b.List(ctx, "") {
				if err != nil {
					t.Fatal(err)
				}
				listed[e.Key] = true
			}
			for k := range held {
				if !listed[k] {
					delete(held, k)
				}
			}
			// "conflict" is hostile only next to "conflict/child.txt".
			if held["conflict"] != held["conflict/child.txt"] {
				for _, k := range []string{"conflict", "conflict/child.txt"} {
					delete(held, k)
					if err := b.Delete(ctx, k); err != nil {
						t.Fatal(err)
					}
				}
			}
			switch {
			case len(held) > 0:
				t.Logf("%s holds %d hostile keys", s.Name, len(held))
			case s.Name == "gcs" || s.Name == "az":
				t.Fatalf("%s holds none of the hostile keys", s.Name)
			default:
				// MinIO and a directory refuse them all; the mount
				// still has to show the rest.
				t.Logf("%s holds none of the hostile keys", s.Name)
			}
			m := startMount(t, s)
			files := map[string]bool{}
			for p, sum := range treeSums(t, m.dir) {
				for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
					if seg == "" || seg == "." || seg == ".." || len(seg) > 255 {
						t.Errorf("the mount shows %q", p)
					}
				}
				if !strings.HasSuffix(p, "/") {
					files[p] = true
					if p != "good.txt" && sum != shaOf([]byte("x")) {
						t.Errorf("%s differs from the store", p)
					}
				}
			}
			wantFiles := map[string]bool{"good.txt": true}
			if held["conflict"] {
				wantFiles["conflict/child.txt"] = true
			}
			if fmt.Sprint(files) != fmt.Sprint(wantFiles) {
				t.Errorf("files %v, want %v", files, wantFiles)
			}
			hidden := hiddenKeys(m.out.String())
			for k := range held {
				if k == "conflict/child.txt" {
					continue // shown: the directory wins over the file "conflict"
				}
				found := false
				for _, h := range hidden {
					found = found || strings.HasPrefix(k, h)
				}
				if !found {
					t.Errorf("no log line names %q or a prefix of it as hidden (hidden: %q)", k, hidden)
				}
			}
			if b, err := os.ReadFile(m.path("good.txt")); err != nil || string(b) != "good" {
				t.Fatalf("after listing hostile keys the mount does not serve: %q, %v", b, err)
			}
			m.unmount()
		})
	}
}

var hiddenLine = regexp.MustCompile(`msg="mount: key hidden[^"]*" key=("(?:[^"\\]|\\.)*"|\S+)`)

// hiddenKeys returns the keys ferry logged as hidden.
func hiddenKeys(out string) []string {
	var keys []string
	for _, m := range hiddenLine.FindAllStringSubmatch(out, -1) {
		k := m[1]
		if strings.HasPrefix(k, `"`) {
			if u, err := strconv.Unquote(k); err == nil {
				k = u
			}
		}
		keys = append(keys, k)
	}
	return keys
}

func TestMountLargeDirectory(t *testing.T) {
	const n = 10_000
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			b := s.Backend(t)
			objs := map[string][]byte{}
			for i := range n {
				objs[fmt.Sprintf("big/e%05d", i)] = bytes.Repeat([]byte{'x'}, i%13)
			}
			start := time.Now()
			putObjectsN(t, b, objs, 64)
			seeded := time.Since(start)
			mtimes := map[string]time.Time{}
			for e, err := range b.List(context.Background(), "big/") {
				if err != nil {
					t.Fatal(err)
				}
				mtimes[strings.TrimPrefix(e.Key, "big/")] = e.ModTime
			}
			m := startMount(t, s)
			if _, err := os.Stat(m.path("big")); err != nil {
				t.Fatal(err)
			}
			before := m.scrape()
			start = time.Now()
			entries, err := os.ReadDir(m.path("big"))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != n {
				t.Fatalf("%d entries, want %d", len(entries), n)
			}
			for i, e := range entries {
				name := fmt.Sprintf("e%05d", i)
				fi, err := e.Info()
				if err != nil {
					t.Fatal(err)
				}
				if e.Name() != name || fi.Size() != int64(i%13) || !fi.ModTime().Equal(mtimes[name]) {
					t.Fatalf("entry %d: %s size %d mtime %v, want %s %d %v", i, e.Name(), fi.Size(), fi.ModTime(), name, i%13, mtimes[name])
				}
			}
			t.Logf("seeded %d objects in %s; listed them with sizes and mtimes in %s", n, seeded.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			after := m.scrape()
			for kind, want := range map[string]float64{"LIST": 1, "HEAD": 0, "GET": 0} {
				key := `ferry_store_requests_total{kind="` + kind + `"}`
				if got := after[key] - before[key]; got != want {
					t.Errorf("listing %d entries with sizes and mtimes made %v %s requests, want %v", n, got, kind, want)
				}
			}
			m.unmount()
		})
	}
}

// A walk of the tree lists each directory once, most of them ahead of the
// walker; a look at a few directories lists only a few more than it opens.
func TestMountWalkListsEachDirectoryOnce(t *testing.T) {
	const dirs = 60
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			objs := map[string][]byte{"walk/d00/sub/g": []byte("g")}
			for i := range dirs {
				objs[fmt.Sprintf("walk/d%02d/f", i)] = []byte{byte(i)}
			}
			putObjects(t, s.Backend(t), objs)
			m := startMount(t, s)
			lists := func() float64 { return m.requests("LIST") }
			before := lists()
			// Like cat walk/d0[0-2]/*: the root, walk/ and three of its
			// subdirectories opened in order.
			for _, d := range []string{"", "walk", "walk/d00", "walk/d01", "walk/d02"} {
				if _, err := os.ReadDir(m.path(d)); err != nil {
					t.Fatal(err)
				}
			}
			// At most: the root and walk/, d00-d18 (the 16 after each of
			// d00-d02, listed ahead) and d00/sub; not all 63.
			if got := lists() - before; got < 5 || got > 22 {
				t.Errorf("opening 5 directories made %v LISTs, want 5 to 22", got)
			}
			var seen int
			err := filepath.WalkDir(m.dir, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					seen++
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := 1 + 1 + dirs + 1; seen != want {
				t.Fatalf("the walk saw %d directories, want %d", seen, want)
			}
			if got := lists() - before; got != float64(seen) {
				t.Errorf("walking %d directories made %v LISTs, want one each", seen, got)
			}
			m.unmount()
		})
	}
}

func TestMountWarmRemountMakesNoGETs(t *testing.T) {
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			objs := map[string][]byte{
				"a/x.bin": randomData(t, 5*mountBlock+3), "a/y.bin": randomData(t, 7000),
				"b/c/z.bin": randomData(t, 2*mountBlock), "top.bin": randomData(t, mountBlock/2),
			}
			putObjects(t, s.Backend(t), objs)
			flags := []string{"--block-size", mountBlockFlag, "--cache-dir", t.TempDir(), "--cache-size", "64MiB"}
			m := startMount(t, s, flags...)
			if d := diffSums(treeSums(t, m.dir), wantSums(objs)); len(d) > 0 {
				t.Fatalf("first mount: %q", d)
			}
			if m.requests("GET") == 0 {
				t.Fatal("the first mount read everything without a GET")
			}
			m.unmount()

			var before testenv.ServerStats
			if s.Name == "s3" {
				before = minioStatsNow(t)
			}
			m = startMount(t, s, flags...)
			// By path first (names resolved by Stat), then by listing.
			for k, v := range objs {
				got, _, err := fileSHA256(m.path(k))
				if err != nil || got != shaOf(v) {
					t.Fatalf("%s after remount: %v", k, err)
				}
			}
			if d := diffSums(treeSums(t, m.dir), wantSums(objs)); len(d) > 0 {
				t.Fatalf("second mount: %q", d)
			}
			metrics := m.scrape()
			if gets := metrics[`ferry_store_requests_total{kind="GET"}`]; gets != 0 {
				t.Errorf("remount over a warm disk cache made %v GETs, want 0", gets)
			}
			if hits := metrics[`ferry_block_cache_hits_total{tier="disk"}`]; hits == 0 {
				t.Error("no disk tier hits after the remount")
			}
			m.unmount()
			if s.Name == "s3" {
				d := minioStatsNow(t).Sub(before)
				if d.Requests["GetObject"] != 0 {
					t.Errorf("MinIO served %v GetObject during the warm remount (all: %v)", d.Requests["GetObject"], d.Requests)
				}
			}
		})
	}
}

func minioStatsNow(t *testing.T) testenv.ServerStats {
	t.Helper()
	st, err := minio.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMountReplacedObjectUnderOpenHandle(t *testing.T) {
	const block = 128 << 10
	for _, s := range Stores(t) {
		t.Run(s.Name, func(t *testing.T) {
			b := s.Backend(t)
			old := randomData(t, 64*block)
			putObjects(t, b, map[string][]byte{"v.bin": old})
			m := startMount(t, s, "--block-size", "128KiB", "--metadata-ttl", "2s", "--readahead", "256KiB")
			f, err := os.Open(m.path("v.bin"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			if _, err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, old[:4096]) {
				t.Fatalf("first read: %v", err)
			}
			replaced := randomData(t, len(old)) // same size: only the version differs
			putObjects(t, b, map[string][]byte{"v.bin": replaced})
			stale := 0
			for _, off := range []int64{20 * block, 40 * block, 63*block + 100} {
				n, err := f.ReadAt(buf, off)
				switch {
				case err == nil && bytes.Equal(buf[:n], old[off:off+int64(n)]):
				case errors.Is(err, syscall.ESTALE):
					stale++
				case err == nil:
					t.Fatalf("read at %d under the old handle returned bytes of the new version", off)
				default:
					t.Fatalf("read at %d: %v, want the old bytes or ESTALE", off, err)
				}
			}
			if stale == 0 {
				t.Error("no read of an unfetched block failed after the replacement")
			}
			if _, err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, old[:4096]) {
				t.Errorf("a block cached for the pinned version no longer serves: %v", err)
			}
			// After the TTL the next open sees the new version, also when
			// the size changes.
			for _, next := range [][]byte{replaced, randomData(t, 3*block+5)} {
				putObjects(t, b, map[string][]byte{"v.bin": next})
				pollUntil(t, 20*time.Second, "the new version through a new open", func() (bool, error) {
					got, err := os.ReadFile(m.path("v.bin"))
					return err == nil && bytes.Equal(got, next), nil
				})
			}
			f.Close()
			m.unmount()
		})
	}
}

func TestMountUnmount(t *testing.T) {
	for _, s := range Stores(t) {
		if s.Name != "local" && s.Name != "s3" {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			putObjects(t, s.Backend(t), map[string][]byte{"f.txt": []byte("hello")})
			m := startMount(t, s)
			out, code := m.stop(syscall.SIGINT)
			if code != 0 || isMountpoint(m.dir) || !strings.Contains(out, "msg=unmounted") {
				t.Fatalf("SIGINT: exit %d, mounted %v:\n%s", code, isMountpoint(m.dir), out)
			}

			m = startMount(t, s)
			f, err := os.Open(m.path("f.txt"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			out, code = m.stop(syscall.SIGTERM)
			if code != 0 || isMountpoint(m.dir) {
				t.Fatalf("SIGTERM with a file open: exit %d, mounted %v:\n%s", code, isMountpoint(m.dir), out)
			}
			if !strings.Contains(out, "is busy") || !strings.Contains(out, "unmounting lazily") {
				t.Errorf("no message about the busy mount:\n%s", out)
			}
		})
	}
}

// ferryWithin runs ferry with a deadline (a mount that should have failed
// but did not would run forever) and returns its output and exit code.
func ferryWithin(t *testing.T, d time.Duration, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("ferry %v still running after %s:\n%s", args, d, out)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func TestMountErrors(t *testing.T) {
	stores := Stores(t)
	s3s := stores[0]
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m := startMount(t, stores[3])
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	unreachable := append(append([]string{}, s3s.Env...), "DATA_STORE_ENDPOINT=http://127.0.0.1:"+strconv.Itoa(port))
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"bad URL", nil, []string{"nosuch://bucket/p", dir}, 2, "nosuch"},
		{"no arguments", nil, nil, 2, "two arguments"},
		{"missing mount point", s3s.Env, []string{s3s.URL, filepath.Join(dir, "missing")}, 2, "does not exist"},
		{"mount point is a file", s3s.Env, []string{s3s.URL, file}, 2, "not a directory"},
		{"already mounted", s3s.Env, []string{s3s.URL, m.dir}, 2, "already mounted"},
		{"unreachable store", unreachable, []string{s3s.URL, dir}, 1, "not reachable"},
		{"missing bucket", s3s.Env, []string{"s3://no-such-bucket-ferry/data/", dir}, 1, "bucket does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := ferryWithin(t, 2*time.Minute, tc.env, append([]string{"mount"}, tc.args...)...)
			out = strings.TrimSpace(out)
			if code != tc.code || strings.Contains(out, "\n") || !strings.HasPrefix(out, "ferry mount: ") || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and one line containing %q", code, out, tc.code, tc.want)
			}
		})
	}
	if !isMountpoint(m.dir) {
		t.Error("the first mount went away")
	}
	if isMountpoint(dir) {
		t.Error("a failed mount left a mount behind")
	}
}

var memoryBound = regexp.MustCompile(`memory_bound="([0-9.]+) MiB"`)

func TestMountMemoryBound(t *testing.T) {
	s := Stores(t)[0]
	if s.Name != "s3" {
		t.Fatal("Stores changed order")
	}
	const files, size = 8, 64 << 20
	objs := map[string][]byte{}
	for i := range files {
		objs[fmt.Sprintf("f%d.bin", i)] = randomData(t, size)
	}
	putObjects(t, s.Backend(t), objs)
	m := startMount(t, s, "--cache-memory", "32MiB", "--readahead", "8MiB", "--readahead-memory", "32MiB",
		"--concurrency", "8", "--block-size", "1MiB")
	match := memoryBound.FindStringSubmatch(m.out.String())
	if match == nil {
		t.Fatalf("no memory_bound in the log:\n%s", m.out.String())
	}
	boundMiB, _ := strconv.ParseFloat(match[1], 64)
	// The documented formula: cache + readahead memory + concurrency x
	// block + max(64 MiB, 8 blocks) + 4 blocks (disk writes behind) +
	// 2 x 32 MiB (FUSE) + 96 MiB (base).
	if want := 32.0 + 32 + 8*1 + 64 + 4*1 + 64 + 96; boundMiB != want {
		t.Fatalf("memory bound %v MiB, want %v MiB by the documented formula", boundMiB, want)
	}
	if total := float64(files*size) / (1 << 20); total <= 1.5*boundMiB {
		t.Fatalf("%v MiB of data cannot show a bound of %v MiB", total, boundMiB)
	}
	pid := m.cmd.Process.Pid
	var (
		mu   sync.Mutex
		peak int64
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, err := procStatus(pid, "VmRSS"); err == nil {
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	// Two sequential readers and one random reader per file, all at once.
	var g errgroup.Group
	for i := range files {
		name := fmt.Sprintf("f%d.bin", i)
		for range 2 {
			g.Go(func() error {
				got, _, err := fileSHA256(m.path(name))
				if err != nil || got != shaOf(objs[name]) {
					return fmt.Errorf("%s: %v", name, err)
				}
				return nil
			})
		}
		g.Go(func() error {
			f, err := os.Open(m.path(name))
			if err != nil {
				return err
			}
			defer f.Close()
			rng := mrand.New(mrand.NewPCG(uint64(i), 9))
			buf := make([]byte, 64<<10)
			for range 300 {
				off := rng.Int64N(size - int64(len(buf)))
				if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, objs[name][off:off+int64(len(buf))]) {
					return fmt.Errorf("%s random read at %d: %v", name, off, err)
				}
			}
			return nil
		})
	}
	err := g.Wait()
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	hwm, err := procStatus(pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS %.1f MiB (sampled %.1f MiB), bound %v MiB, %d MiB read", float64(hwm)/1024, float64(peak)/1024, boundMiB, 3*files*size>>20)
	if float64(hwm)/1024 > boundMiB {
		t.Errorf("peak RSS %.1f MiB over the bound of %v MiB", float64(hwm)/1024, boundMiB)
	}
	m.unmount()
}

func TestMountOwnerAndModes(t *testing.T) {
	s := Stores(t)[3]
	putObjects(t, s.Backend(t), map[string][]byte{"d/f.txt": []byte("x")})
	m := startMount(t, s, "--uid", "1234", "--gid", "5678", "--file-mode", "0640", "--dir-mode", "0750")
	for name, want := range map[string]os.FileMode{"d": os.ModeDir | 0o750, "d/f.txt": 0o640} {
		fi, err := os.Stat(m.path(name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != want || st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("%s: mode %v owner %d:%d, want %v 1234:5678", name, fi.Mode(), st.Uid, st.Gid, want)
		}
	}
	m.unmount()
}
