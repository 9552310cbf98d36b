package backends

import (
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"testing"
)

func TestErrorCarriesKindAndCause(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}
	err := Errorf("stat", "file:///srv", "a/b", ErrNotExist, cause)
	if !errors.Is(err, ErrNotExist) || errors.Is(err, ErrPermission) {
		t.Fatalf("errors.Is on %v: kind not matched exactly", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe != cause {
		t.Fatalf("errors.As does not reach the cause of %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `key "a/b"`) || !strings.Contains(msg, "file:///srv") {
		t.Fatalf("message %q does not name store and key", msg)
	}
}

func TestKindForStatus(t *testing.T) {
	for status, want := range map[int]error{
		http.StatusNotFound: ErrNotExist, http.StatusPreconditionFailed: ErrPrecondition,
		http.StatusForbidden: ErrPermission, http.StatusUnauthorized: ErrPermission,
		http.StatusRequestedRangeNotSatisfiable: ErrInvalidRange,
		http.StatusInternalServerError:          nil, http.StatusOK: nil,
	} {
		if got := KindForStatus(status); got != want {
			t.Errorf("KindForStatus(%d) = %v, want %v", status, got, want)
		}
	}
}
