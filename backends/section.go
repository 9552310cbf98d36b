package backends

import (
	"errors"
	"io"
)

// Section is n bytes of an io.ReadSeeker from offset base, seen as an
// io.ReadSeekCloser positioned at 0: what a driver hands its SDK as a
// request body, so that exactly n bytes are sent and the SDK can seek back
// to 0 to retry. Reading past n ends with io.EOF; the underlying reader
// ending early gives io.ErrUnexpectedEOF. Close does nothing. A Section is
// used by one goroutine at a time, and the underlying reader by one
// Section at a time.
type Section struct {
	r       io.ReadSeeker
	base, n int64
	pos     int64
	synced  bool // r is at base+pos
}

// NewSection returns the section [base, base+n) of r.
func NewSection(r io.ReadSeeker, base, n int64) *Section {
	return &Section{r: r, base: base, n: n}
}

// SectionHere returns the n bytes of r that follow its current position,
// as Put and UploadPart take their bodies.
func SectionHere(r io.ReadSeeker, n int64) (*Section, error) {
	if n < 0 {
		return nil, errors.New("negative size")
	}
	base, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	return &Section{r: r, base: base, n: n, synced: true}, nil
}

func (s *Section) Read(p []byte) (int, error) {
	if s.pos >= s.n {
		return 0, io.EOF
	}
	if !s.synced {
		if _, err := s.r.Seek(s.base+s.pos, io.SeekStart); err != nil {
			return 0, err
		}
		s.synced = true
	}
	if rest := s.n - s.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	k, err := s.r.Read(p)
	s.pos += int64(k)
	if err == io.EOF {
		err = nil
		if s.pos < s.n {
			err = io.ErrUnexpectedEOF
		}
	}
	return k, err
}

func (s *Section) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.pos
	case io.SeekEnd:
		offset += s.n
	default:
		return 0, errors.New("section: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("section: negative position")
	}
	if offset != s.pos {
		s.pos, s.synced = offset, false
	}
	return offset, nil
}

func (s *Section) Close() error { return nil }
