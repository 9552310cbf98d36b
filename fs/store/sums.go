package store

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferryio/ferry/backends"
)

// SumXattr is the extended attribute in which ferry keeps a file's
// checksums and what it last knew the store to hold for it (see the
// package doc, "Up to date").
const SumXattr = "user.ferry.sum"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// hashBufSize is the largest read buffer hashFile uses.
const hashBufSize = 1 << 20

// hashFile computes the MD5 and CRC32C of the file at path in one pass,
// checking ctx between buffers. size is the expected size (negative when
// unknown): the read buffer is min(size+1, 1 MiB), so that hashing many
// small files at once does not hold a mebibyte each.
func hashFile(ctx context.Context, path string, size int64) (backends.Checksums, error) {
	f, err := os.Open(path)
	if err != nil {
		return backends.Checksums{}, err
	}
	defer f.Close()
	m, c := md5.New(), crc32.New(castagnoli)
	w := io.MultiWriter(m, c)
	n := int64(hashBufSize)
	if size >= 0 && size < n {
		n = size + 1 // one more byte, so that the first read can meet EOF
	}
	buf := make([]byte, n)
	for {
		if err := ctx.Err(); err != nil {
			return backends.Checksums{}, err
		}
		n, err := f.Read(buf)
		w.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return backends.Checksums{}, err
		}
	}
	return backends.Checksums{MD5: m.Sum(nil), CRC32C: c.Sum(nil)}, nil
}

// sumRecord is the content of SumXattr: the checksums of the file as it
// was (size, mtime, inode) when they were computed and, when ferry stored
// or verified it, the store's version ETag of the object then.
//
// On disk it is one line of space-separated fields:
//
//	ferry1 <size> <mtime ns> <inode> <md5 hex> <crc32c hex> <target id> <etag>
//
// where target id is the first 8 bytes (hex) of SHA-256 of the store URL
// and key, or "-" with etag "-" when nothing is known of the store.
type sumRecord struct {
	Size    int64
	MtimeNS int64
	Ino     uint64
	Sums    backends.Checksums
	Target  string // target id; "" when unknown
	ETag    string
}

// targetID names one object of one store in a sum record.
func targetID(storeURL, key string) string {
	h := sha256.Sum256([]byte(storeURL + "\x00" + key))
	return hex.EncodeToString(h[:8])
}

func (r sumRecord) encode() []byte {
	target, etag := r.Target, r.ETag
	if target == "" || etag == "" {
		target, etag = "-", "-"
	}
	return fmt.Appendf(nil, "ferry1 %d %d %d %x %x %s %s", r.Size, r.MtimeNS, r.Ino,
		r.Sums.MD5, r.Sums.CRC32C, target, etag)
}

func decodeRecord(b []byte) (sumRecord, bool) {
	f := strings.Fields(string(b))
	if len(f) != 8 || f[0] != "ferry1" {
		return sumRecord{}, false
	}
	var r sumRecord
	var err [5]error
	r.Size, err[0] = strconv.ParseInt(f[1], 10, 64)
	r.MtimeNS, err[1] = strconv.ParseInt(f[2], 10, 64)
	r.Ino, err[2] = strconv.ParseUint(f[3], 10, 64)
	r.Sums.MD5, err[3] = hex.DecodeString(f[4])
	r.Sums.CRC32C, err[4] = hex.DecodeString(f[5])
	for _, e := range err {
		if e != nil {
			return sumRecord{}, false
		}
	}
	if len(r.Sums.MD5) != md5.Size || len(r.Sums.CRC32C) != 4 {
		return sumRecord{}, false
	}
	if f[6] != "-" {
		r.Target, r.ETag = f[6], f[7]
	}
	return r, true
}

// matches reports whether the record was made for the file in state st.
func (r sumRecord) matches(st fileState) bool {
	return r.Size == st.Size && r.MtimeNS == st.ModTime.UnixNano() && r.Ino == st.Ino
}

// readRecord returns the file's sum record, if it has a well-formed one.
func readRecord(path string) (sumRecord, bool) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, SumXattr, buf)
	if err != nil {
		return sumRecord{}, false
	}
	return decodeRecord(buf[:n])
}

// writeRecord stores r on the file. Failures (a filesystem without user
// xattrs, a read-only file) only cost a re-hash on the next run and are
// returned for a debug log.
func writeRecord(path string, r sumRecord) error {
	return unix.Lsetxattr(path, SumXattr, r.encode(), 0)
}

// writeRecordFile is writeRecord on an open file (no path lookup).
func writeRecordFile(f *os.File, r sumRecord) error {
	return unix.Fsetxattr(int(f.Fd()), SumXattr, r.encode(), 0)
}
