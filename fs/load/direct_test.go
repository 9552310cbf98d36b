package load

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/fs/objread"
	"github.com/ferryio/ferry/internal/pagebuf"
)

// A multi-part file is written around the page cache: after the run, the
// pages of its aligned parts are not resident (only the unaligned tail
// went through the page cache); with noDirect every page is. The tree is
// the same either way.
func TestMultiPartFilesWrittenDirectly(t *testing.T) {
	s := newStore(t)
	want, _ := s.dataset(t)
	for _, noDirect := range []bool{false, true} {
		dir := t.TempDir()
		o := opts()
		o.noDirect = noDirect
		if res, err := Run(t.Context(), s.b, dir, o); err != nil || res.Fetched != 6 {
			t.Fatalf("noDirect %v: %+v, %v", noDirect, res, err)
		}
		resident, pages := residentPages(t, filepath.Join(dir, "big/model.ckpt"))
		sameTree(t, dir, want)
		if noDirect && resident != pages {
			t.Errorf("buffered: %d of %d pages resident, want all", resident, pages)
		}
		if !noDirect && resident > 1 {
			t.Errorf("direct: %d of %d pages resident, want at most the tail's", resident, pages)
		}
	}
}

// residentPages counts the pages of the file at path in the page cache.
func residentPages(t *testing.T, path string) (resident, pages int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(m))), uintptr(len(m)), uintptr(unsafe.Pointer(unsafe.SliceData(vec)))); e != 0 {
		t.Fatal("mincore:", e)
	}
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, len(vec)
}

// Chunks of every alignment, written concurrently in random order, some
// directly and some through the page cache, make up the file exactly.
func TestDirectFileMixedChunks(t *testing.T) {
	dir := t.TempDir()
	r := &runner{dir: dir, root: mustRoot(t, dir)}
	const size = 1<<20 + 777
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), size/36+1)[:size]
	f, err := r.root.OpenFile("part", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	d, err := r.openDirect("part", f, size)
	if err != nil || d == nil {
		t.Fatalf("openDirect: %v, %v (the test directory needs fallocate and O_DIRECT)", d, err)
	}
	defer d.Close()
	if _, ok := any(d).(objread.ParallelWriterAt); !ok {
		t.Fatal("directFile is not a ParallelWriterAt")
	}
	// Aligned chunks of 64 KiB up to 1 MiB - 64 KiB, then a chunk starting
	// mid-page, then the unaligned tail.
	type chunk struct{ off, n int }
	var chunks []chunk
	for off := 0; off < 1<<20-64<<10; off += 64 << 10 {
		chunks = append(chunks, chunk{off, 64 << 10})
	}
	chunks = append(chunks, chunk{1<<20 - 64<<10, 100}, chunk{1<<20 - 64<<10 + 100, 64<<10 - 100}, chunk{1 << 20, 777})
	rand.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
	buf := func(c chunk) []byte { // page-aligned: whole-page chunks go directly
		b := pagebuf.Alloc(c.n)
		copy(b, data[c.off:c.off+c.n])
		return b
	}
	var wg sync.WaitGroup
	for _, c := range chunks {
		wg.Go(func() {
			if n, err := d.WriteAt(buf(c), int64(c.off)); err != nil || n != c.n {
				t.Errorf("WriteAt(%d bytes at %d) = %d, %v", c.n, c.off, n, err)
			}
		})
	}
	wg.Wait()
	got := make([]byte, size)
	if _, err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the file differs from the chunks written")
	}
}
