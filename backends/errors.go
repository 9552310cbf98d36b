package backends

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors. Drivers wrap the store's own error in an *Error whose
// Kind is one of these, so callers test the kind with errors.Is and still
// reach the SDK's error with errors.As. No caller matches error text.
var (
	// ErrNotExist: no object at the key (or no such upload).
	ErrNotExist = errors.New("object does not exist")
	// ErrPrecondition: the object's version is not the one asked for (it
	// was replaced or deleted since it was pinned).
	ErrPrecondition = errors.New("object version changed")
	// ErrPermission: the credentials do not allow the call.
	ErrPermission = errors.New("permission denied")
	// ErrInvalidRange: the read starts beyond the end of the object.
	ErrInvalidRange = errors.New("invalid range")
	// ErrInvalidKey: the key cannot be stored by this backend (for the
	// local backend: a name a filesystem cannot hold).
	ErrInvalidKey = errors.New("invalid key")
	// ErrChecksum: the bytes do not match the checksum sent or recorded.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrNoBucket: the bucket, container or root directory does not exist.
	ErrNoBucket = errors.New("bucket does not exist")
)

// Error is the error drivers return: an operation on a key, a Kind (one of
// the sentinels above, or nil when no sentinel applies) and the underlying
// cause (usually the SDK's error).
type Error struct {
	Op    string // "list", "stat", "get", "put", "delete", "upload-part", ...
	Store string // Backend.String()
	Key   string
	Kind  error
	Err   error
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Store != "" {
		msg += " " + e.Store
	}
	if e.Key != "" {
		msg += fmt.Sprintf(" key %q", e.Key)
	}
	switch {
	case e.Kind != nil && e.Err != nil:
		return msg + ": " + e.Kind.Error() + ": " + e.Err.Error()
	case e.Kind != nil:
		return msg + ": " + e.Kind.Error()
	case e.Err != nil:
		return msg + ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes both the sentinel and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Errorf is a helper for drivers: an *Error for op on key with kind and a
// cause. kind may be nil.
func Errorf(op, store, key string, kind, cause error) error {
	return &Error{Op: op, Store: store, Key: key, Kind: kind, Err: cause}
}

// KindForStatus maps the HTTP status codes every store shares onto the
// sentinels: 404 ErrNotExist, 412 ErrPrecondition, 401 and 403
// ErrPermission, 416 ErrInvalidRange; nil for any other status. Drivers
// check their store's own error codes first and fall back to this.
func KindForStatus(status int) error {
	switch status {
	case http.StatusNotFound:
		return ErrNotExist
	case http.StatusPreconditionFailed:
		return ErrPrecondition
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrPermission
	case http.StatusRequestedRangeNotSatisfiable:
		return ErrInvalidRange
	}
	return nil
}
