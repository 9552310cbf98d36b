package disktier

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk format of one block file:
//
//	offset 0  4 bytes  magic "FRB1"
//	offset 4  4 bytes  CRC-32C (Castagnoli) of the content, big endian
//	offset 8  8 bytes  content length, big endian
//	offset 16 ...      content
//
// Files are written to Dir/tmp and renamed into place without fsync. Rename
// makes a block visible all at once to readers, but after a power loss the
// filesystem may keep the name and lose (part of) the data. Rather than pay
// an fsync per block, every read checks the file size against the recorded
// length and the content against the checksum; a file that fails is a torn
// block, deleted and reported as ErrCorrupt (a miss for the caller).
const (
	headerSize = 16
	magic      = "FRB1"
	tmpDirName = "tmp"
	lockName   = "lock"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

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
func readBlock(path string) ([]byte, error) {
	f, err := os.Open(path)
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
	buf := make([]byte, size)
	if _, err := io.ReadFull(f, buf); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, errTorn{"shrank while reading"}
		}
		return nil, err
	}
	if string(buf[:4]) != magic {
		return nil, errTorn{"bad magic"}
	}
	n := binary.BigEndian.Uint64(buf[8:16])
	if n != uint64(size-headerSize) {
		return nil, errTorn{fmt.Sprintf("header says %d bytes, file holds %d", n, size-headerSize)}
	}
	data := buf[headerSize:]
	if crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(buf[4:8]) {
		return nil, errTorn{"checksum mismatch"}
	}
	return data, nil
}

// writeTemp writes data as a block file into a new temporary file in
// tmpDir and returns its path. The file is complete but not yet visible.
func writeTemp(tmpDir string, data []byte) (string, error) {
	f, err := os.CreateTemp(tmpDir, "blk-")
	if err != nil {
		return "", err
	}
	var hdr [headerSize]byte
	copy(hdr[:4], magic)
	binary.BigEndian.PutUint32(hdr[4:8], crc32.Checksum(data, castagnoli))
	binary.BigEndian.PutUint64(hdr[8:16], uint64(len(data)))
	_, err = f.Write(hdr[:])
	if err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
