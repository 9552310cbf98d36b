//go:build !linux

package local

// xattrs: outside Linux the driver runs in its degraded mode (no metadata,
// checksums or directory markers; see the package documentation).
type xattrs = noAttrs
