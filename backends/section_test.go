package backends

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestSection(t *testing.T) {
	r := bytes.NewReader([]byte("0123456789"))
	if _, err := r.Seek(2, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	s, err := SectionHere(r, 5)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // read, seek back to 0 as an SDK retry does, read again
		got, err := io.ReadAll(s)
		if err != nil || string(got) != "23456" {
			t.Fatalf("read %q, %v; want 23456", got, err)
		}
		if _, err := s.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
	}
	if end, _ := s.Seek(0, io.SeekEnd); end != 5 {
		t.Fatalf("SeekEnd = %d, want 5", end)
	}
	got, _ := io.ReadAll(NewSection(r, 7, 2))
	if string(got) != "78" {
		t.Fatalf("NewSection(7, 2) read %q", got)
	}
	if _, err := io.ReadAll(NewSection(r, 8, 5)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short underlying reader: %v, want io.ErrUnexpectedEOF", err)
	}
}
