package disktier

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for recency.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func open(t *testing.T, dir string, maxBytes int64, clock *fakeClock) *Tier {
	t.Helper()
	opts := Options{Dir: dir, MaxBytes: maxBytes, TouchInterval: -1}
	if clock != nil {
		opts.Now = clock.Now
	}
	tier, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	check(t, tier)
	return tier
}

func check(t *testing.T, tier *Tier) {
	t.Helper()
	if err := tier.checkInvariants(); err != nil {
		t.Fatal(err)
	}
}

func block(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func mustGet(t *testing.T, tier *Tier, id ID, want []byte) {
	t.Helper()
	got, err := tier.Get(id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id.relPath(), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s): content differs (%d bytes, want %d)", id.relPath(), len(got), len(want))
	}
}

// diskBytes sums the sizes of the block files actually on disk.
func diskBytes(t *testing.T, dir string) (n int64, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type().IsRegular() && rel != lockName {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, files
}

func TestRoundTripAnyKey(t *testing.T) {
	tier := open(t, t.TempDir(), 1<<20, nil)
	defer tier.Close()
	keys := []string{"", "a/b/c", "../../etc/passwd", "x\x00y", strings.Repeat("k", 5000), "ünïcødé/ 空白"}
	for i, k := range keys {
		id := NewID(k, "v1", int64(i))
		if err := tier.Put(id, block(byte(i), 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range keys {
		mustGet(t, tier, NewID(k, "v1", int64(i)), block(byte(i), 100+i))
	}
	if !tier.Has(NewID("a/b/c", "v1", 1)) || tier.Has(NewID("a/b/c", "v2", 1)) {
		t.Fatal("Has disagrees with what was put")
	}
	if _, err := tier.Get(NewID("a/b/c", "v2", 1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other version: err = %v, want ErrNotFound", err)
	}
	// Empty blocks are valid (an empty object has one).
	empty := NewID("empty", "v", 0)
	if err := tier.Put(empty, nil); err != nil {
		t.Fatal(err)
	}
	mustGet(t, tier, empty, []byte{})
	check(t, tier)
}

func TestIDUnambiguous(t *testing.T) {
	if NewID("ab", "c", 0) == NewID("a", "bc", 0) {
		t.Fatal("(ab,c) and (a,bc) share an ID")
	}
	if NewID("a", "b", 1) == NewID("a", "b", 2) {
		t.Fatal("indexes share an ID")
	}
	id := NewID("o", "v", 12)
	dir, name := filepath.Split(id.relPath())
	got, ok := parseName(filepath.Clean(dir), name)
	if !ok || got != id {
		t.Fatalf("parseName(%q, %q) = %v, %v", dir, name, got, ok)
	}
	for _, bad := range []string{"zz", id.relPath()[3:] + "x", strings.ToUpper(name), name[:10]} {
		if _, ok := parseName(filepath.Clean(dir), bad); ok {
			t.Fatalf("parseName accepted %q", bad)
		}
	}
}

func TestRestartKeepsBlocks(t *testing.T) {
	dir := t.TempDir()
	tier := open(t, dir, 1<<20, nil)
	ids := []ID{NewID("o", "v", 0), NewID("o", "v", 1), NewID("p", "w", 0)}
	for i, id := range ids {
		if err := tier.Put(id, block(byte(i), 1000)); err != nil {
			t.Fatal(err)
		}
	}
	used := tier.Used()
	if err := tier.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tier.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := tier.Get(ids[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	// A leftover temporary file from a crash is removed by Open.
	if err := os.WriteFile(filepath.Join(dir, tmpDirName, "blk-123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	tier = open(t, dir, 1<<20, nil)
	defer tier.Close()
	if tier.Used() != used || tier.Len() != len(ids) {
		t.Fatalf("after restart: used %d len %d, want %d %d", tier.Used(), tier.Len(), used, len(ids))
	}
	for i, id := range ids {
		mustGet(t, tier, id, block(byte(i), 1000))
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, tmpDirName)); len(ents) != 0 {
		t.Fatalf("tmp not emptied: %v", ents)
	}
}

// TestTornBlocks damages block files in the ways a crash or bit rot can and
// checks each is detected, removed and reported as ErrCorrupt.
func TestTornBlocks(t *testing.T) {
	damage := map[string]func(path string) error{
		"truncated": func(p string) error { return os.Truncate(p, headerSize+10) },
		"empty":     func(p string) error { return os.Truncate(p, 0) },
		"flipped": func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)-1] ^= 0xff
			return os.WriteFile(p, b, 0o644)
		},
		"extended": func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			f.Write([]byte("junk"))
			return f.Close()
		},
		"zeroed": func(p string) error {
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, make([]byte, st.Size()), 0o644)
		},
	}
	for _, size := range []int{4096, alignedMin + 100} { // both formats
		for name, hurt := range damage {
			t.Run(fmt.Sprintf("%s-%d", name, size), func(t *testing.T) { tornBlock(t, size, hurt) })
		}
	}
}

func tornBlock(t *testing.T, size int, hurt func(string) error) {
	dir := t.TempDir()
	tier := open(t, dir, 1<<20, nil)
	defer tier.Close()
	id, good := NewID("o", "v", 3), NewID("o", "v", 4)
	tier.Put(id, block(1, size))
	tier.Put(good, block(2, size))
	if err := hurt(filepath.Join(dir, id.relPath())); err != nil {
		t.Fatal(err)
	}
	if _, err := tier.Get(id); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get torn block: err = %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(filepath.Join(dir, id.relPath())); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("torn file not removed: %v", err)
	}
	if _, err := tier.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Get: err = %v, want ErrNotFound", err)
	}
	if tier.Used() != FileSize(size) {
		t.Fatalf("used = %d after dropping the torn block", tier.Used())
	}
	mustGet(t, tier, good, block(2, size))
	check(t, tier)
}

func TestTornBlockFoundAtOpen(t *testing.T) {
	dir := t.TempDir()
	tier := open(t, dir, 1<<20, nil)
	id := NewID("o", "v", 0)
	tier.Put(id, block(1, 100))
	tier.Close()
	os.Truncate(filepath.Join(dir, id.relPath()), 5)
	tier = open(t, dir, 1<<20, nil)
	defer tier.Close()
	if tier.Len() != 0 || tier.Used() != 0 {
		t.Fatalf("short file indexed: len %d used %d", tier.Len(), tier.Used())
	}
	if _, err := os.Stat(filepath.Join(dir, id.relPath())); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("short file not removed: %v", err)
	}
}

func TestFileRemovedBehindOurBack(t *testing.T) {
	dir := t.TempDir()
	tier := open(t, dir, 1<<20, nil)
	defer tier.Close()
	id := NewID("o", "v", 0)
	tier.Put(id, block(1, 100))
	os.Remove(filepath.Join(dir, id.relPath()))
	if _, err := tier.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if tier.Len() != 0 || tier.Used() != 0 {
		t.Fatal("vanished file still indexed")
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	tier := open(t, dir, 1<<20, nil)
	_, err := Open(Options{Dir: dir, MaxBytes: 1 << 20})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: err = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q does not name the directory", err)
	}
	tier.Close()
	tier = open(t, dir, 1<<20, nil) // released by Close
	tier.Close()
}

func TestEvictionLRUUnderBound(t *testing.T) {
	dir := t.TempDir()
	const size = 1000
	const per = headerSize + size
	tier := open(t, dir, 5*per, newClock())
	defer tier.Close()
	var evicted []int64
	tier.onEvict = func(n int64) { evicted = append(evicted, n) }
	ids := make([]ID, 20)
	for i := range ids {
		ids[i] = NewID("o", "v", int64(i))
	}
	for i := 0; i < 5; i++ {
		tier.Put(ids[i], block(byte(i), size))
	}
	// Touch block 0 so block 1 is now the least recently used.
	mustGet(t, tier, ids[0], block(0, size))
	tier.Put(ids[5], block(5, size))
	if _, err := tier.Get(ids[1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LRU block 1 not evicted: %v", err)
	}
	mustGet(t, tier, ids[0], block(0, size))
	for i := 6; i < 20; i++ {
		tier.Put(ids[i], block(byte(i), size))
		check(t, tier)
		if n, _ := diskBytes(t, dir); n > 5*per {
			t.Fatalf("%d bytes on disk, bound %d", n, 5*per)
		}
	}
	if n, files := diskBytes(t, dir); n != tier.Used() || files != 5 {
		t.Fatalf("disk holds %d bytes in %d files; index says %d", n, files, tier.Used())
	}
	if len(evicted) != 15 || evicted[0] != per {
		t.Fatalf("OnEvict calls: %v", evicted)
	}
	if err := tier.Put(NewID("big", "v", 0), make([]byte, 5*per)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized Put: %v", err)
	}
}

// TestRecencySurvivesRestart: Open orders blocks by mtime, so the block read
// last before the restart is the last to be evicted after it.
func TestRecencySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	const size = 100
	const per = headerSize + size
	tier := open(t, dir, 10*per, clock)
	ids := make([]ID, 4)
	for i := range ids {
		ids[i] = NewID("o", "v", int64(i))
		clock.Advance(time.Second)
		tier.Put(ids[i], block(byte(i), size))
	}
	clock.Advance(time.Second)
	mustGet(t, tier, ids[0], block(0, size)) // 0 becomes most recent
	tier.Close()

	// Reopen with room for two blocks: the two most recent (3 and 0) stay.
	tier = open(t, dir, 2*per, clock)
	defer tier.Close()
	for _, i := range []int{1, 2} {
		if _, err := tier.Get(ids[i]); !errors.Is(err, ErrNotFound) {
			t.Fatalf("block %d kept after restart: %v", i, err)
		}
	}
	mustGet(t, tier, ids[3], block(3, size))
	mustGet(t, tier, ids[0], block(0, size))
	if n, files := diskBytes(t, dir); files != 2 || n != 2*per {
		t.Fatalf("disk holds %d bytes in %d files after shrinking", n, files)
	}
}

func TestTouchInterval(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	tier, err := Open(Options{Dir: dir, MaxBytes: 1 << 20, Now: clock.Now, TouchInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	id := NewID("o", "v", 0)
	tier.Put(id, block(0, 10))
	path := filepath.Join(dir, id.relPath())
	put := clock.Now()
	clock.Advance(30 * time.Second)
	mustGet(t, tier, id, block(0, 10))
	if st, _ := os.Stat(path); !st.ModTime().Equal(put) {
		t.Fatalf("mtime refreshed within TouchInterval: %v", st.ModTime())
	}
	clock.Advance(time.Minute)
	mustGet(t, tier, id, block(0, 10))
	if st, _ := os.Stat(path); !st.ModTime().Equal(clock.Now()) {
		t.Fatalf("mtime %v not refreshed after TouchInterval, want %v", st.ModTime(), clock.Now())
	}
}

func TestUnknownFilesLeftAlone(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "README"), []byte("mine"), 0o644)
	os.Mkdir(filepath.Join(dir, "ab"), 0o755)
	os.WriteFile(filepath.Join(dir, "ab", "notablock"), []byte("mine too"), 0o644)
	tier := open(t, dir, 1<<20, nil)
	tier.Close()
	for _, p := range []string{"README", "ab/notablock"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if tier.Len() != 0 {
		t.Fatal("foreign files indexed")
	}
}

// TestConcurrent hammers one small tier from many goroutines (run with
// -race): every Get returns either a miss or the exact block, and the
// invariants and the bound hold throughout.
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	const size = 512
	tier := open(t, dir, 8*(headerSize+size), nil)
	defer tier.Close()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				n := int64((i*7 + g) % 16)
				id := NewID("obj", "v", n)
				if i%3 == 0 {
					if err := tier.Put(id, block(byte(n), size)); err != nil {
						errc <- err
						return
					}
					continue
				}
				got, err := tier.Get(id)
				if err != nil && !errors.Is(err, ErrNotFound) {
					errc <- err
					return
				}
				if err == nil && !bytes.Equal(got, block(byte(n), size)) {
					errc <- fmt.Errorf("block %d: wrong content", n)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	check(t, tier)
	if n, _ := diskBytes(t, dir); n != tier.Used() {
		t.Fatalf("disk holds %d bytes, index says %d", n, tier.Used())
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(Options{MaxBytes: 1}); err == nil {
		t.Fatal("Open without Dir succeeded")
	}
	if _, err := Open(Options{Dir: t.TempDir()}); err == nil {
		t.Fatal("Open without MaxBytes succeeded")
	}
}

// TestLockedAcrossProcesses runs this test binary again as a child process
// that holds the directory, then checks Open here fails with ErrLocked and
// succeeds once the child has exited.
func TestLockedAcrossProcesses(t *testing.T) {
	if dir := os.Getenv("FERRY_DISKTIER_HOLD"); dir != "" {
		tier, err := Open(Options{Dir: dir, MaxBytes: 1 << 20})
		if err != nil {
			fmt.Println("child:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
		tier.Close()
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockedAcrossProcesses$")
	cmd.Env = append(os.Environ(), "FERRY_DISKTIER_HOLD="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	_, err = Open(Options{Dir: dir, MaxBytes: 1 << 20})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open while another process holds %s: %v", dir, err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	open(t, dir, 1<<20, nil).Close()
}

// Blocks of alignedMin bytes or more are stored page-aligned ("FRB2", the
// content at pageHeaderSize), whether their memory is aligned (written
// with O_DIRECT where the filesystem has it) or not, with or without a
// tail shorter than a page; smaller ones keep the compact format. All read
// back the same, also after a restart.
func TestPageAlignedBlocks(t *testing.T) {
	dir := t.TempDir()
	tier := open(t, dir, 8<<20, nil)
	unaligned := make([]byte, alignedMin+1)
	copy(unaligned[1:], block(9, alignedMin))
	cases := []struct {
		data  []byte
		magic string
	}{
		{block(1, alignedMin), pageMagic},
		{block(2, alignedMin+100), pageMagic},
		{unaligned[1:], pageMagic},
		{block(4, alignedMin-1), magic},
	}
	for i, c := range cases {
		id := NewID("o", "v", int64(i))
		if err := tier.Put(id, c.data); err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 4)
		f, err := os.Open(filepath.Join(dir, id.relPath()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadFull(f, head)
		st, serr := f.Stat()
		f.Close()
		if err != nil || serr != nil || string(head) != c.magic || st.Size() != FileSize(len(c.data)) {
			t.Errorf("block %d: magic %q, %v bytes (%v, %v); want %q, %d", i, head, st.Size(), err, serr, c.magic, FileSize(len(c.data)))
		}
		mustGet(t, tier, id, c.data)
	}
	check(t, tier)
	tier.Close()
	tier = open(t, dir, 8<<20, nil)
	defer tier.Close()
	for i, c := range cases {
		mustGet(t, tier, NewID("o", "v", int64(i)), c.data)
	}
	if tier.Used() != FileSize(alignedMin)*3+100+FileSize(alignedMin-1) {
		t.Errorf("used %d after restart", tier.Used())
	}
}

// A large block in the compact format, as ferry wrote before the
// page-aligned one, is still found at Open and read.
func TestCompactLargeBlockStillReads(t *testing.T) {
	dir := t.TempDir()
	tier := open(t, dir, 8<<20, nil)
	tier.Close()
	data := block(7, alignedMin+5)
	id := NewID("old", "v", 0)
	hdr := make([]byte, headerSize)
	copy(hdr, magic)
	binary.BigEndian.PutUint32(hdr[4:8], crc32.Checksum(data, castagnoli))
	binary.BigEndian.PutUint64(hdr[8:16], uint64(len(data)))
	p := filepath.Join(dir, id.relPath())
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(hdr, data...), 0o644); err != nil {
		t.Fatal(err)
	}
	tier = open(t, dir, 8<<20, nil)
	defer tier.Close()
	mustGet(t, tier, id, data)
	if tier.Used() != headerSize+int64(len(data)) {
		t.Errorf("used %d, want %d", tier.Used(), headerSize+len(data))
	}
}
