// Package pagebuf allocates and recognises page-aligned memory, which
// O_DIRECT reads and writes need (the disk tier's block files, load's
// part files).
package pagebuf

import "unsafe"

// Size is the alignment: the page size of the platforms ferry runs on,
// and a multiple of every logical block size O_DIRECT asks for there.
const Size = 4096

// Alloc returns a zeroed buffer of n bytes that starts on a page. Go's
// large allocations usually do; otherwise it over-allocates by a page.
func Alloc(n int) []byte {
	if buf := make([]byte, n); Aligned(buf) {
		return buf
	}
	buf := make([]byte, n+Size)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(buf))) & (Size - 1))
	return buf[off : off+n : off+n]
}

// Aligned reports whether p starts on a page.
func Aligned(p []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(p)))%Size == 0
}
