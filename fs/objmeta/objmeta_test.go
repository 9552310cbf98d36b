package objmeta

import (
	"io/fs"
	"testing"
	"time"
)

func TestMtimeFormatsRoundTrip(t *testing.T) {
	times := []time.Time{
		time.Date(2023, 11, 14, 22, 13, 20, 123456789, time.UTC),
		time.Unix(1700000000, 0),
		time.Unix(-2, 500_000_000), // 1969-12-31T23:59:58.5Z
		time.Unix(0, -1),
	}
	for _, f := range []MtimeFormat{MtimeRFC3339, MtimeUnixFloat, MtimeRFC3339Goog} {
		for _, mt := range times {
			md := Metadata(f, mt, 0o644)
			got, ok := ParseMtime(md)
			if !ok || !got.Equal(mt) || !SameMtime(md, mt) {
				t.Errorf("format %d: %v -> %q -> %v", f, mt, md[MetaMtime], got)
			}
		}
	}
	// What rclone writes on S3 and what gsutil writes on GCS.
	if got, _ := ParseMtime(map[string]string{"mtime": "1700000000.5"}); !got.Equal(time.Unix(1700000000, 5e8)) {
		t.Errorf("rclone S3 float: %v", got)
	}
	if md := Metadata(MtimeUnixFloat, time.Unix(1700000000, 5), 0); md[MetaMtime] != "1700000000.000000005" {
		t.Errorf("S3 mtime written as %q", md[MetaMtime])
	}
	goog := map[string]string{MetaGoogMtime: "1700000000"}
	if got, ok := ParseMtime(goog); !ok || !got.Equal(time.Unix(1700000000, 0)) || !SameMtime(goog, time.Unix(1700000000, 999)) {
		t.Errorf("gsutil mtime: %v %v", got, ok)
	}
	for _, bad := range []map[string]string{nil, {"mtime": "yesterday"}, {MetaGoogMtime: "x"}} {
		if _, ok := ParseMtime(bad); ok {
			t.Errorf("ParseMtime(%v) ok", bad)
		}
	}
}

func TestModeMetadata(t *testing.T) {
	for m, want := range map[fs.FileMode]string{
		0o644:                  "0100644",
		fs.ModeDir | 0o755:     "040755",
		0o4755 | fs.ModeSetuid: "0104755",
		fs.ModeSticky | 0o777:  "0101777",
	} {
		md := Metadata(MtimeRFC3339, time.Unix(0, 0), m)
		if md[MetaMode] != want {
			t.Errorf("mode %v -> %q, want %q", m, md[MetaMode], want)
		}
		if p, ok := ParseMode(md); !ok || p != m.Perm() {
			t.Errorf("ParseMode(%q) = %v, %v", md[MetaMode], p, ok)
		}
	}
}
