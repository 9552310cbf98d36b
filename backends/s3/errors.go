package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/ferryio/ferry/backends"
)

// kindOf maps an SDK error onto one of the backends sentinels, by the S3
// error code first and the HTTP status second (HEAD responses carry no body,
// so only their status is known). It returns nil when no sentinel applies.
// Error messages are never inspected.
func kindOf(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchUpload":
			return backends.ErrNotExist
		case "NoSuchBucket":
			return backends.ErrNoBucket
		case "PreconditionFailed":
			return backends.ErrPrecondition
		case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled":
			return backends.ErrPermission
		case "InvalidRange":
			return backends.ErrInvalidRange
		case "BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch", "InvalidChecksum":
			return backends.ErrChecksum
		case "InvalidObjectName", "KeyTooLongError",
			// MinIO refuses keys with "." or ".." segments, empty segments
			// or segments its filesystem cannot hold.
			"XMinioInvalidObjectName", "XMinioInvalidResourceName":
			return backends.ErrInvalidKey
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return backends.KindForStatus(re.HTTPStatusCode())
	}
	return nil
}

// wrap turns an SDK error from op on key into a *backends.Error whose Kind
// is the matching sentinel and whose cause is the SDK error. When ctx is
// done, the cause also matches ctx.Err() (context.Canceled or
// context.DeadlineExceeded) even if the SDK reported the failure otherwise.
// wrap(nil) is nil.
func (b *Backend) wrap(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	return backends.Errorf(op, b.String(), key, kindOf(err), err)
}

// wrapAs is wrap with the Kind forced to kind (for calls where the store's
// answer has one meaning whatever its code, such as a pinned read of a
// deleted object).
func (b *Backend) wrapAs(op, key string, kind, err error) error {
	return backends.Errorf(op, b.String(), key, kind, err)
}

// noSuchVersion reports whether err is S3 refusing a read by version id
// because it has no such version to serve: the id names a delete marker
// (405 MethodNotAllowed) or is not an id the store can parse (400
// InvalidArgument; a read by version id has no other argument to refuse).
// Missing versions (NoSuchVersion) already map to ErrNotExist.
func noSuchVersion(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "MethodNotAllowed", "InvalidArgument":
			return true
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusMethodNotAllowed, http.StatusBadRequest:
			return true
		}
	}
	return false
}
