package local

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io/fs"
	"os"
	"syscall"

	"github.com/ferryio/ferry/backends"
)

// errNoAttr: the file has no meta attribute, or its filesystem keeps no
// user extended attributes.
var errNoAttr = errors.New("no user.ferry extended attribute")

// attrStore reads and writes the raw meta record of a file or directory
// (of f when f is not nil, else of path, following symlinks). get and
// remove return errNoAttr when there is no record; all three return it
// when the filesystem keeps no user extended attributes.
type attrStore interface {
	get(path string, f *os.File) ([]byte, error)
	set(path string, f *os.File, data []byte) error
	remove(path string) error
}

// noAttrs is the attrStore of a filesystem without user extended
// attributes: the driver's degraded mode.
type noAttrs struct{}

func (noAttrs) get(string, *os.File) ([]byte, error) { return nil, errNoAttr }
func (noAttrs) set(string, *os.File, []byte) error   { return errNoAttr }
func (noAttrs) remove(string) error                  { return errNoAttr }

// meta is the record the driver keeps with each object it wrote, as JSON
// in the user.ferry extended attribute of the file (or, for a directory
// marker, of the directory). It is written on the temporary file before
// the rename, so an object and its record appear together.
type meta struct {
	// Nonce is random per write: a file replaced by one of the same size
	// and mtime that reuses the old inode still gets a new Version.
	Nonce string `json:"nonce,omitempty"`
	// Size and MTime (ns) are the file's when the record was written; a
	// file changed in place since no longer matches, and its checksums are
	// then not reported.
	Size        int64             `json:"size"`
	MTime       int64             `json:"mtime_ns"`
	MD5         []byte            `json:"md5,omitempty"`
	CRC32C      []byte            `json:"crc32c,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// Marker is set on directories that are "dir/" marker objects.
	Marker bool `json:"marker,omitempty"`
}

// readMeta returns the record of the file at path (or of f, when not
// nil). ok is false when there is none (files placed by hand, degraded
// filesystems, unreadable records).
func (b *Backend) readMeta(path string, f *os.File) (m meta, ok bool, err error) {
	raw, err := b.attrs.get(path, f)
	if errors.Is(err, errNoAttr) {
		return meta{}, false, nil
	}
	if err != nil {
		return meta{}, false, err
	}
	if json.Unmarshal(raw, &m) != nil {
		return meta{}, false, nil // not ours: ignore it
	}
	return m, true, nil
}

// writeMeta stores m on f (or on path when f is nil). stored is false on
// filesystems without user xattrs: the object is kept without a record.
func (b *Backend) writeMeta(path string, f *os.File, m meta) (stored bool, err error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return false, err
	}
	err = b.attrs.set(path, f, raw)
	if errors.Is(err, errNoAttr) {
		return false, nil
	}
	if errors.Is(err, syscall.E2BIG) || errors.Is(err, syscall.ENOSPC) {
		return false, fmt.Errorf("content type and metadata (%d bytes as JSON) do not fit in an extended attribute: %w", len(raw), err)
	}
	return err == nil, err
}

// objectInfo describes key from its file's attributes and record.
func objectInfo(key string, fi fs.FileInfo, m meta, ok bool) backends.ObjectInfo {
	info := backends.ObjectInfo{
		Key:     key,
		ModTime: fi.ModTime(),
		Version: version(fi, m),
	}
	if fi.IsDir() {
		// A marker is an empty object.
		info.Size = 0
	} else {
		info.Size = fi.Size()
	}
	if !ok {
		return info
	}
	info.ContentType = m.ContentType
	if len(m.Metadata) > 0 {
		info.Metadata = m.Metadata
	}
	if fi.IsDir() || (m.Size == fi.Size() && m.MTime == fi.ModTime().UnixNano()) {
		info.Checksums = backends.Checksums{MD5: m.MD5, CRC32C: m.CRC32C}
	}
	return info
}

// version is the ETag of a file: a hash of its size, mtime, inode and the
// nonce of its record. A directory marker's ignores size and mtime, which
// change with its entries.
func version(fi fs.FileInfo, m meta) backends.Version {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	var s string
	if fi.IsDir() {
		s = fmt.Sprintf("dir:%d:%s", ino, m.Nonce)
	} else {
		s = fmt.Sprintf("file:%d:%d:%d:%s", fi.Size(), fi.ModTime().UnixNano(), ino, m.Nonce)
	}
	sum := sha256.Sum256([]byte(s))
	return backends.Version{ETag: hex.EncodeToString(sum[:8])}
}

// newID returns 32 random hex digits, for nonces, temp files and uploads.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}

// hasher computes both checksums of the bytes written to it.
type hasher struct {
	md5 hash.Hash
	crc hash.Hash32
}

func newHasher() *hasher {
	return &hasher{md5: md5.New(), crc: crc32.New(crc32.MakeTable(crc32.Castagnoli))}
}

func (h *hasher) Write(p []byte) (int, error) {
	h.md5.Write(p)
	return h.crc.Write(p)
}

// sums returns the MD5 and the big-endian CRC32C of what was written.
func (h *hasher) sums() backends.Checksums {
	return backends.Checksums{MD5: h.md5.Sum(nil), CRC32C: h.crc.Sum(nil)}
}

// checkSums compares the checksums the caller sent with the computed ones.
func checkSums(sent, got backends.Checksums) error {
	if len(sent.MD5) > 0 && string(sent.MD5) != string(got.MD5) {
		return fmt.Errorf("MD5 of the bytes is %x, the caller sent %x", got.MD5, sent.MD5)
	}
	if len(sent.CRC32C) > 0 && string(sent.CRC32C) != string(got.CRC32C) {
		return fmt.Errorf("CRC32C of the bytes is %x, the caller sent %x", got.CRC32C, sent.CRC32C)
	}
	return nil
}
