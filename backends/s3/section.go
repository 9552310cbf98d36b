package s3

import (
	"errors"
	"io"
)

// section is the n bytes of an io.ReadSeeker that follow its position at
// creation, seekable within themselves, so that the SDK sends exactly the
// size the caller named and can rewind to retry.
type section struct {
	r     io.ReadSeeker
	base  int64 // position of r where the section starts
	n     int64 // length of the section
	off   int64 // position within the section
	valid bool  // r is at base+off
}

func newSection(r io.ReadSeeker, n int64) (*section, error) {
	if n < 0 {
		return nil, errors.New("negative size")
	}
	base, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	return &section{r: r, base: base, n: n, valid: true}, nil
}

func (s *section) Read(p []byte) (int, error) {
	if s.off >= s.n {
		return 0, io.EOF
	}
	if !s.valid {
		if _, err := s.r.Seek(s.base+s.off, io.SeekStart); err != nil {
			return 0, err
		}
		s.valid = true
	}
	if rest := s.n - s.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := s.r.Read(p)
	s.off += int64(n)
	if err == io.EOF && s.off < s.n {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (s *section) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.off
	case io.SeekEnd:
		offset += s.n
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	if offset != s.off {
		s.off, s.valid = offset, false
	}
	return offset, nil
}
