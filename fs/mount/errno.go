package mount

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"syscall"

	"github.com/ferryio/ferry/backends"
	"github.com/ferryio/ferry/cache/block"
)

// errnoFor maps the error of operation op on key to the errno the kernel
// gets. It is the only place where errors become errnos:
//
//   - nil: 0.
//   - the request's context is done (the caller was interrupted, or the
//     mount is closing): EINTR, logged at debug level only.
//   - ErrNotExist: ENOENT for namespace operations; for a read of an open
//     handle it means the pinned version is gone, like ErrPrecondition.
//   - ErrPrecondition while reading: ESTALE ("Stale file handle"), logged
//     as a warning: the object was replaced or deleted after the file was
//     opened, and its bytes of the pinned version are no longer in the
//     store. A new open (after the metadata TTL) sees the new version.
//   - ErrPermission: EACCES, logged as a warning.
//   - the write path's refusals (read-write mounts): errNotEmpty
//     ENOTEMPTY, errExists EEXIST, errCrossDir EXDEV (a directory
//     rename), errNotSupp ENOTSUP, and a syscall.Errno as itself; logged
//     at debug level, they are answers, not failures.
//   - anything else: EIO, logged as an error naming the key and the cause.
//
// Every log line names the operation and the key; causes are passed
// through redact so that a signed URL quoted by an SDK never reaches a log.
func errnoFor(ctx context.Context, log *slog.Logger, op, key string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	level := slog.LevelError
	switch {
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)),
		errors.Is(err, block.ErrClosed):
		errno, level = syscall.EINTR, slog.LevelDebug
	case op == opRead && (errors.Is(err, backends.ErrPrecondition) || errors.Is(err, backends.ErrNotExist)):
		errno, level = syscall.ESTALE, slog.LevelWarn
	case errors.Is(err, backends.ErrNotExist):
		errno, level = syscall.ENOENT, slog.LevelDebug
	case errors.Is(err, backends.ErrPermission):
		errno, level = syscall.EACCES, slog.LevelWarn
	case errors.Is(err, errNotEmpty):
		errno, level = syscall.ENOTEMPTY, slog.LevelDebug
	case errors.Is(err, errExists):
		errno, level = syscall.EEXIST, slog.LevelDebug
	case errors.Is(err, errCrossDir):
		errno, level = syscall.EXDEV, slog.LevelDebug
	case errors.Is(err, errNotSupp):
		errno, level = syscall.ENOTSUP, slog.LevelDebug
	case errors.As(err, &errno):
		level = slog.LevelDebug
	default:
		errno = syscall.EIO
	}
	log.LogAttrs(ctx, level, "mount: "+op+" failed",
		slog.String("key", key), slog.String("errno", errno.Error()), slog.String("cause", redact(err.Error())))
	return errno
}

// Operation names for errnoFor and the logs.
const (
	opLookup  = "lookup"
	opReaddir = "readdir"
	opRead    = "read"
	// The write path's.
	opWrite  = "write"
	opCreate = "create"
	opMkdir  = "mkdir"
	opRemove = "remove"
	opRename = "rename"
)

// signedQuery matches the query string of a URL, where signatures, SAS
// tokens and credentials travel.
var signedQuery = regexp.MustCompile(`(https?://[^\s?"']*)\?[^\s"']*`)

// redact removes the query strings of URLs in s.
func redact(s string) string {
	return signedQuery.ReplaceAllString(s, "$1?REDACTED")
}
