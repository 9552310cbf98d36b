// Package objmeta is the user metadata ferry reads and writes on objects:
// a file's mtime and mode, in the keys and formats rclone uses on each
// store (so either tool sees the other's times), and a content type from
// the file name. load, store and the read-write mount share it.
package objmeta

import (
	"fmt"
	"io/fs"
	"mime"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Metadata keys ferry writes on every object (lower-case, as the backends
// contract wants them). They are rclone's, so that rclone sees ferry's
// times and modes and ferry sees rclone's.
const (
	// MetaMtime is the file's modification time, in the format rclone
	// uses on that store (see MtimeFormat).
	MetaMtime = "mtime"
	// MetaGoogMtime is gsutil's whole-second mtime, which rclone also
	// writes (and reads after "mtime") on GCS.
	MetaGoogMtime = "goog-reserved-file-mtime"
	// MetaMode is the file's type and permission bits, octal, unix style,
	// as rclone's metadata "mode" ("0100644" for a file, "040755" for a
	// directory).
	MetaMode = "mode"
)

// MtimeFormat is how a store's "mtime" metadata is written.
type MtimeFormat int

const (
	// MtimeRFC3339 is RFC 3339 with nanoseconds, as rclone writes it on
	// Azure Blob, GCS and by default.
	MtimeRFC3339 MtimeFormat = iota
	// MtimeUnixFloat is seconds since the epoch with nine decimals
	// ("1700000000.123456789"), as rclone writes X-Amz-Meta-Mtime on S3.
	MtimeUnixFloat
	// MtimeRFC3339Goog is MtimeRFC3339 plus gsutil's
	// goog-reserved-file-mtime (whole seconds), as rclone writes on GCS.
	MtimeRFC3339Goog
)

// Metadata is the user metadata for a file or directory with mtime and
// mode.
func Metadata(f MtimeFormat, mtime time.Time, mode fs.FileMode) map[string]string {
	md := map[string]string{MetaMode: "0" + strconv.FormatUint(uint64(unixMode(mode)), 8)}
	switch f {
	case MtimeUnixFloat:
		md[MetaMtime] = formatUnixFloat(mtime)
	case MtimeRFC3339Goog:
		md[MetaGoogMtime] = strconv.FormatInt(mtime.Unix(), 10)
		md[MetaMtime] = mtime.UTC().Format(time.RFC3339Nano)
	default:
		md[MetaMtime] = mtime.UTC().Format(time.RFC3339Nano)
	}
	return md
}

// unixMode converts Go's FileMode to st_mode bits (type and permissions,
// setuid/setgid/sticky included).
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	switch {
	case m.IsDir():
		u |= syscall.S_IFDIR
	case m&fs.ModeSymlink != 0:
		u |= syscall.S_IFLNK
	default:
		u |= syscall.S_IFREG
	}
	if m&fs.ModeSetuid != 0 {
		u |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= syscall.S_ISVTX
	}
	return u
}

// ParseMtime reads the modification time from user metadata in any of the
// formats rclone writes: "mtime" as RFC 3339 or as seconds since the epoch
// with a fraction, else gsutil's goog-reserved-file-mtime (whole seconds).
// The second result is false when there is none or it does not parse.
func ParseMtime(md map[string]string) (time.Time, bool) {
	if v, ok := md[MetaMtime]; ok {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t, true
		}
		if t, ok := parseUnixFloat(v); ok {
			return t, true
		}
		return time.Time{}, false
	}
	if v, ok := md[MetaGoogMtime]; ok {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Unix(s, 0), true
		}
	}
	return time.Time{}, false
}

// formatUnixFloat writes t as exact decimal seconds since the epoch with
// nine decimals; times before 1970 get a leading "-".
func formatUnixFloat(t time.Time) string {
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	if sec < 0 && nsec > 0 {
		return fmt.Sprintf("-%d.%09d", -(sec + 1), 1e9-nsec)
	}
	return fmt.Sprintf("%d.%09d", sec, nsec)
}

// parseUnixFloat parses "seconds[.fraction]" exactly (no float rounding),
// as rclone's S3 backend does.
func parseUnixFloat(v string) (time.Time, bool) {
	secStr, frac, _ := strings.Cut(strings.TrimSpace(v), ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nsec int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		nsec = int64(n)
		if strings.HasPrefix(secStr, "-") {
			nsec = -nsec
		}
	}
	return time.Unix(sec, nsec), true
}

// ParseMode reads the "mode" metadata ("0100644") as permission bits; the
// second result is false when there is none or it does not parse.
func ParseMode(md map[string]string) (fs.FileMode, bool) {
	v, ok := md[MetaMode]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil {
		return 0, false
	}
	return fs.FileMode(n & 0o777), true
}

// ContentType is the MIME type for name's extension, or
// application/octet-stream.
func ContentType(name string) string {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// SameMtime reports whether the metadata's mtime equals t at the precision
// the metadata carries (whole seconds for gsutil's key alone).
func SameMtime(md map[string]string, t time.Time) bool {
	got, ok := ParseMtime(md)
	if !ok {
		return false
	}
	if _, hasFull := md[MetaMtime]; !hasFull {
		return got.Unix() == t.Unix()
	}
	return got.Equal(t)
}
