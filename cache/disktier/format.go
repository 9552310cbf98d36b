package disktier

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/internal/pagebuf"
)

// On-disk format of one block file:
//
//	offset 0  4 bytes  magic "FRB1", or "FRB2" for a page-aligned block
//	offset 4  4 bytes  CRC-32C (Castagnoli) of the content, big endian
//	offset 8  8 bytes  content length, big endian
//	offset 16 ...      content ("FRB1"), or zeros up to pageHeaderSize
//	                   and the content from there ("FRB2")
//
// Blocks of alignedMin bytes or more are "FRB2": their content starts
// page-aligned, so that writeTemp can write it with O_DIRECT (see there);
// smaller ones keep the compact header.
//
// Files are written to Dir/tmp and renamed into place without fsync. Rename
// makes a block visible all at once to readers, but after a power loss the
// filesystem may keep the name and lose (part of) the data. Rather than pay
// an fsync per block, every read checks the file size against the recorded
// length and the content against the checksum; a file that fails is a torn
// block, deleted and reported as ErrCorrupt (a miss for the caller).
const (
	headerSize     = 16
	magic          = "FRB1"
	pageHeaderSize = 4096
	pageMagic      = "FRB2"
	alignedMin     = 64 << 10
	tmpDirName     = "tmp"
	lockName       = "lock"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FileSize is the size of the block file holding n bytes of content: a
// Tier holds such a block only if its MaxBytes is at least that.
func FileSize(n int) int64 {
	if n >= alignedMin {
		return pageHeaderSize + int64(n)
	}
	return headerSize + int64(n)
}

// ID names one block on disk: the SHA-256 of its object identity (object
// key and version) and the block's index within the object.
type ID struct {
	Sum   [sha256.Size]byte
	Index int64
}

// NewID returns the ID of block index of version of object. Any strings are
// valid: they are hashed, never used as file names. The encoding hashed is
// unambiguous (the object's length comes first), so distinct (object,
// version) pairs get distinct sums.
func NewID(object, version string, index int64) ID {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(object)))
	h.Write(n[:])
	io.WriteString(h, object)
	io.WriteString(h, version)
	id := ID{Index: index}
	h.Sum(id.Sum[:0])
	return id
}

// relPath is the block's file relative to Dir: a two-hex-digit fan-out
// directory, then the full hex sum and the index.
func (id ID) relPath() string {
	s := hex.EncodeToString(id.Sum[:])
	return s[:2] + string(filepath.Separator) + s + "-" + strconv.FormatInt(id.Index, 10)
}

// parseName returns the ID of a block file named name in fan-out directory
// dir, or false if the names are not those of a block file.
func parseName(dir, name string) (ID, bool) {
	var id ID
	sum, idx, ok := strings.Cut(name, "-")
	if !ok || len(sum) != 2*sha256.Size || !strings.HasPrefix(sum, dir) || len(dir) != 2 {
		return id, false
	}
	if _, err := hex.Decode(id.Sum[:], []byte(sum)); err != nil || hex.EncodeToString(id.Sum[:]) != sum {
		return id, false // not hex, or not lower-case hex
	}
	i, err := strconv.ParseInt(idx, 10, 64)
	if err != nil || i < 0 || strconv.FormatInt(i, 10) != idx {
		return id, false
	}
	id.Index = i
	return id, true
}

// errTorn marks a block file whose size, magic or checksum is wrong.
type errTorn struct{ reason string }

func (e errTorn) Error() string { return "torn block: " + e.reason }

// readBlock reads and verifies the block file at path. It returns the
// content, an error wrapping fs.ErrNotExist if there is no file, or errTorn.
// The returned slice is freshly allocated and never reused.
//
// A file of whole pages, alignedMin bytes of content or more (a block
// writeTemp wrote page-aligned), is read with O_DIRECT where the
// filesystem allows it, into a page-aligned buffer: no copy through the
// page cache, which would otherwise hold the block a second time beside
// the mounted file's pages.
func readBlock(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	direct := err == nil
	if errors.Is(err, unix.EINVAL) {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < headerSize {
		return nil, errTorn{fmt.Sprintf("%d bytes, shorter than the header", size)}
	}
	var buf []byte
	if direct && size%pageHeaderSize == 0 && size >= pageHeaderSize+alignedMin {
		buf = pagebuf.Alloc(int(size))
	} else {
		if direct {
			if err := clearDirect(f); err != nil {
				return nil, err
			}
		}
		buf = make([]byte, size)
	}
	if _, err := io.ReadFull(f, buf); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, errTorn{"shrank while reading"}
		}
		return nil, err
	}
	hdr := int64(headerSize)
	switch string(buf[:4]) {
	case magic:
	case pageMagic:
		hdr = pageHeaderSize
	default:
		return nil, errTorn{"bad magic"}
	}
	n := binary.BigEndian.Uint64(buf[8:16])
	if size < hdr || n != uint64(size-hdr) {
		return nil, errTorn{fmt.Sprintf("header says %d bytes, file holds %d", n, size-hdr)}
	}
	data := buf[hdr:]
	if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(buf[4:8]) {
		return nil, errTorn{"checksum mismatch"}
	}
	return data, nil
}

// writeTemp writes data as a block file into a new temporary file in
// tmpDir and returns its path. The file is complete but not yet visible.
//
// A block of alignedMin bytes or more is written with O_DIRECT where the
// filesystem allows it and the content's memory is page-aligned (Go's
// large allocations are): its bytes go from the caller's buffer to the
// device without a copy into the page cache. That copy was 40% of a cold
// sequential read's CPU in a mount, and the page cache then held the
// bytes twice (as the mounted file's pages and as the block file's). A
// tail shorter than a page is written buffered.
func writeTemp(tmpDir string, data []byte) (string, error) {
	name := filepath.Join(tmpDir, "blk-"+rand.Text())
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	aligned := len(data) >= alignedMin
	direct := aligned && pagebuf.Aligned(data)
	f, err := os.OpenFile(name, flags|directFlag(direct), 0o644)
	if direct && errors.Is(err, unix.EINVAL) { // no O_DIRECT here (tmpfs)
		direct = false
		f, err = os.OpenFile(name, flags, 0o644)
	}
	if err != nil {
		return "", err
	}
	if aligned {
		// One extent for the whole file: written in pieces (the header,
		// then the content directly), it would otherwise get three, and a
		// read three seeks. Where there is no fallocate, so be it.
		_ = unix.Fallocate(int(f.Fd()), 0, 0, FileSize(len(data)))
	}
	err = writeBlock(f, data, aligned, direct)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

func directFlag(direct bool) int {
	if direct {
		return unix.O_DIRECT
	}
	return 0
}

// writeBlock writes the header and data to f, in the page-aligned format
// when aligned; with direct (f was opened O_DIRECT) the header and the
// whole pages of data go directly, the rest after clearing O_DIRECT.
func writeBlock(f *os.File, data []byte, aligned, direct bool) error {
	var hdr []byte
	if aligned {
		hdr = pagebuf.Alloc(pageHeaderSize)
		copy(hdr[:4], pageMagic)
	} else {
		hdr = make([]byte, headerSize)
		copy(hdr[:4], magic)
	}
	binary.BigEndian.PutUint32(hdr[4:8], crc32.Checksum(data, castagnoli))
	binary.BigEndian.PutUint64(hdr[8:16], uint64(len(data)))
	if _, err := f.Write(hdr); err != nil {
		return err
	}
	n := 0
	if direct {
		n = len(data) &^ (pagebuf.Size - 1)
		if _, err := f.Write(data[:n]); err != nil {
			return err
		}
		if n == len(data) {
			return nil
		}
		if err := clearDirect(f); err != nil {
			return err
		}
	}
	_, err := f.Write(data[n:])
	return err
}

// clearDirect clears O_DIRECT on f.
func clearDirect(f *os.File) error {
	fd := f.Fd()
	flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(fd, unix.F_SETFL, flags&^unix.O_DIRECT)
	}
	if err != nil {
		return &os.PathError{Op: "fcntl", Path: f.Name(), Err: err}
	}
	return nil
}
