package store

import (
	"testing"
)

func TestSumRecordEncoding(t *testing.T) {
	r := sumRecord{Size: 5, MtimeNS: 42, Ino: 7, Target: "0011223344556677", ETag: `"abc-2"`}
	r.Sums.MD5 = make([]byte, 16)
	r.Sums.CRC32C = []byte{1, 2, 3, 4}
	got, ok := decodeRecord(r.encode())
	if !ok || got.Size != 5 || got.MtimeNS != 42 || got.Ino != 7 || got.ETag != r.ETag || got.Target != r.Target || string(got.Sums.CRC32C) != string(r.Sums.CRC32C) {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	r.Target, r.ETag = "", ""
	if got, ok := decodeRecord(r.encode()); !ok || got.Target != "" || got.ETag != "" {
		t.Fatalf("without target: %+v %v", got, ok)
	}
	for _, bad := range []string{"", "ferry1 1 2 3", "ferry2 5 42 7 00000000000000000000000000000000 01020304 - -", "ferry1 5 42 7 zz 01020304 - -"} {
		if _, ok := decodeRecord([]byte(bad)); ok {
			t.Errorf("decodeRecord(%q) ok", bad)
		}
	}
}
