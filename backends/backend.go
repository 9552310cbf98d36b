// Package backends defines the one interface every object store driver
// implements (s3, gcs, az, local), the sentinel errors they return, and the
// value types that cross it.
//
// Keys are the full object keys inside the bucket (or container, or local
// root directory), UTF-8, without any leading bucket name. Drivers never know
// about files on disk that are not theirs, about FUSE or about caching: they
// translate one call into the store's API and map the store's errors onto the
// sentinels below.
//
// Every method honours its context: a cancelled context makes the call return
// promptly with an error for which errors.Is(err, context.Canceled) holds.
package backends

import (
	"context"
	"io"
	"iter"
	"time"
)

// Backend is an object store seen as a flat namespace of keys.
//
// All methods are safe for concurrent use.
type Backend interface {
	// String names the store for log lines, for example "s3://bucket" or
	// "file:///srv/data". It never contains credentials.
	String() string

	// List streams every object whose key starts with prefix, in ascending
	// byte order of Key, paginating internally. Entries are objects only
	// (Entry.IsPrefix is always false); "dir/" marker objects are listed like
	// any other object. An empty result is not an error. The first error ends
	// the sequence: it is yielded once with a zero Entry.
	List(ctx context.Context, prefix string) iter.Seq2[Entry, error]

	// ListDir streams one level below prefix using "/" as the delimiter:
	// objects whose key has no "/" after prefix, and common prefixes
	// (implicit directories, Entry.IsPrefix true, Key ending in "/") for the
	// rest. prefix is normally "" or ends with "/". Entries come in ascending
	// byte order of Key, each common prefix once. A marker object whose key
	// equals prefix itself (for example "dir/" when listing "dir/") is
	// yielded as an object. Errors end the sequence as in List.
	ListDir(ctx context.Context, prefix string) iter.Seq2[Entry, error]

	// Stat returns the attributes of the object at key. A missing key
	// returns an error matching ErrNotExist.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// GetRange opens the bytes [offset, offset+length) of the object at key;
	// length < 0 means "to the end". The returned ObjectInfo describes the
	// whole object (its full Size and its Version) as the store served it.
	//
	//   - A range that runs past the end is cut at the end.
	//   - offset == Size yields an empty body (also for an empty object).
	//   - offset > Size returns an error matching ErrInvalidRange.
	//   - length == 0 yields an empty body when offset <= Size.
	//   - A missing key returns ErrNotExist.
	//   - With opts.IfVersion set, the read fails with ErrPrecondition unless
	//     the object's current version equals it (or, with opts.Exact, the
	//     store still holds that version: see ReadOptions); the body then
	//     never holds bytes of another version.
	//
	// The caller must Close the body. Errors while reading the body are
	// returned by Read and match the same sentinels where they apply.
	GetRange(ctx context.Context, key string, offset, length int64, opts ReadOptions) (io.ReadCloser, ObjectInfo, error)

	// Put stores size bytes read from body at key, replacing any object
	// there, and returns the new object's attributes. Either the whole
	// object becomes visible or, on any error (including a cancelled
	// context), the key is left as it was: a partial object is never
	// visible. body is read from its current position; drivers may Seek it
	// back there to retry. When opts carries checksums the store verifies
	// them where it can and the put fails on a mismatch.
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) (ObjectInfo, error)

	// Delete removes the object at key. Deleting a missing key succeeds
	// (returns nil), so that Delete is idempotent.
	Delete(ctx context.Context, key string) error
}

// Multipart is the optional capability of uploading one object in parts,
// in any order and from several processes in turn: an Upload is plain data
// that can be saved (it marshals to JSON) and handed to a fresh client in a
// new process to go on where the last one stopped. Nothing is visible at the
// key until Complete succeeds.
//
// Detect it with a type assertion: mp, ok := b.(backends.Multipart).
type Multipart interface {
	// CreateUpload starts a multipart upload for key. opts is remembered
	// in the Upload and applied on Complete (content type, metadata, KMS).
	CreateUpload(ctx context.Context, key string, opts PutOptions) (Upload, error)

	// UploadPart stores part number n (1-based, at most MaxParts) of the
	// upload. Parts may be sent in any order and concurrently; sending a
	// number again replaces that part. Every part but the last must be at
	// least MinPartSize bytes. The part's checksum, when the driver can send
	// one, is verified by the store.
	UploadPart(ctx context.Context, u Upload, n int, body io.ReadSeeker, size int64) (Part, error)

	// ListParts returns the parts the store holds for the upload, in
	// ascending part number. An upload that is unknown to the store (never
	// created, completed or aborted) returns ErrNotExist.
	ListParts(ctx context.Context, u Upload) ([]Part, error)

	// CompleteUpload assembles the given parts, which must be in ascending
	// number and as returned by UploadPart or ListParts, into the object at
	// u.Key, atomically, and releases the upload's resources. If
	// u.Options.CRC32C or MD5 is set for the whole object the result is
	// checked against it and a mismatch fails the call without leaving the
	// object visible where the store allows that.
	CompleteUpload(ctx context.Context, u Upload, parts []Part) (ObjectInfo, error)

	// AbortUpload discards the upload and every part stored for it.
	// Aborting an unknown upload succeeds. Afterwards nothing is visible at
	// u.Key that was not there before.
	AbortUpload(ctx context.Context, u Upload) error

	// ListUploads streams the uploads not yet completed or aborted whose key
	// starts with prefix, so that uploads abandoned by a dead process can be
	// found and aborted. Order is unspecified. Stores that cannot list
	// pending uploads yield nothing; their pending parts expire on their own
	// (documented per driver).
	ListUploads(ctx context.Context, prefix string) iter.Seq2[Upload, error]

	// MinPartSize and MaxParts are the store's limits for UploadPart.
	MinPartSize() int64
	MaxParts() int
}

// Entry is one element of a listing: an object, or with IsPrefix a common
// prefix standing for an implicit directory (then only Key is set).
type Entry struct {
	ObjectInfo
	IsPrefix bool
}

// ObjectInfo is what the store knows of one object.
type ObjectInfo struct {
	Key  string
	Size int64
	// ModTime is the store's last-modified time (not the user's mtime,
	// which, when recorded, is Metadata["mtime"]).
	ModTime time.Time
	// Version identifies this exact content of the object.
	Version Version
	// Checksums are the store's own checksums of the whole object, where
	// it keeps them; zero fields mean unknown.
	Checksums Checksums
	// ContentType and Metadata are set by Stat and GetRange; listings may
	// leave them empty where the store's list call does not return them.
	ContentType string
	// Metadata holds user metadata with lower-case keys.
	Metadata map[string]string
}

// Version identifies one content of an object. Two ObjectInfo with equal,
// non-zero Versions for the same key hold the same bytes.
//
//   - s3: ETag, and ID = version id when the bucket is versioned
//   - gcs: ID = generation (decimal), ETag = the object's etag
//   - az: ETag
//   - local: ETag = size, mtime and inode of the file, hashed
type Version struct {
	ETag string `json:"etag,omitempty"`
	ID   string `json:"id,omitempty"`
}

// IsZero reports whether v carries no version at all.
func (v Version) IsZero() bool { return v.ETag == "" && v.ID == "" }

// String is a compact, stable form for logs and cache keys.
func (v Version) String() string {
	if v.ID == "" {
		return v.ETag
	}
	return v.ETag + "@" + v.ID
}

// Checksums of a whole object. Empty fields are unknown.
type Checksums struct {
	// MD5 is the raw 16-byte digest.
	MD5 []byte `json:"md5,omitempty"`
	// CRC32C is the 4-byte big-endian Castagnoli CRC, as the stores encode
	// it.
	CRC32C []byte `json:"crc32c,omitempty"`
	// CRC32 is the 4-byte big-endian IEEE CRC-32, which S3 keeps as a
	// full-object checksum for objects uploaded with it (the AWS SDKs'
	// default). Reported by stores, never sent: uploads send CRC32C and MD5.
	CRC32 []byte `json:"crc32,omitempty"`
	// CRC64NVME is the 8-byte big-endian CRC-64/NVME (reflected
	// polynomial 0x9a6c9329ac4bc9b5), which S3 keeps as a full-object
	// checksum of every object uploaded without another one (AWS's
	// default since 2025) and recent AWS SDKs and CLI send. Reported by
	// stores, never sent.
	CRC64NVME []byte `json:"crc64nvme,omitempty"`
}

// IsZero reports whether no checksum is known.
func (c Checksums) IsZero() bool {
	return len(c.MD5) == 0 && len(c.CRC32C) == 0 && len(c.CRC32) == 0 && len(c.CRC64NVME) == 0
}

// ReadOptions tune GetRange.
type ReadOptions struct {
	// IfVersion, when non-zero, pins the read to that version (see
	// GetRange). Drivers compare the fields the store supports for
	// conditions: ETag on s3, az and local, ID (generation) on gcs.
	IfVersion Version

	// Exact, with IfVersion.ID set, reads exactly that version (the s3
	// version id, the gcs generation) even when it is no longer the
	// object's current one, on stores that keep old versions (a versioned
	// s3 bucket, a gcs bucket with object versioning). The returned
	// ObjectInfo then describes that version, and its Version.ID is
	// IfVersion.ID. A version the store does not hold (never this key's,
	// or not kept: the object was replaced or deleted on a bucket that
	// keeps no old versions, or the old version was removed) fails with
	// ErrPrecondition, never ErrNotExist. IfVersion.ID alone names
	// the version; drivers whose read response reports the ETag (s3) also
	// fail with ErrPrecondition when a non-empty IfVersion.ETag is not that
	// version's. Reading an old s3 version needs the s3:GetObjectVersion
	// permission.
	//
	// Exact without IfVersion.ID changes nothing: the read is pinned (or
	// not) as without it. Stores without version ids (az, local) ignore
	// Exact: their reads stay pinned to IfVersion.ETag, the current
	// content only. With Exact false every read behaves as documented
	// above.
	Exact bool
}

// PutOptions tune Put and CreateUpload.
type PutOptions struct {
	ContentType string `json:"content_type,omitempty"`
	// Metadata is stored as user metadata; keys are lower-case ASCII.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Checksums of the whole object, sent for the store to verify where it
	// can. Drivers may also compute and send their own per request.
	Checksums Checksums `json:"checksums,omitempty"`
	// KMSKeyID requests SSE-KMS with that key (s3 only; ignored elsewhere).
	KMSKeyID string `json:"kms_key_id,omitempty"`
}

// Upload is the saved state of a multipart upload. It is plain data: a
// process may marshal it to JSON and a new process may resume with it.
type Upload struct {
	Key string `json:"key"`
	// ID is the store's upload id (s3) or one the driver made up (gcs, az,
	// local), unique per upload.
	ID      string     `json:"id"`
	Options PutOptions `json:"options"`
	// Started is when CreateUpload ran, for cleaning up stale uploads.
	Started time.Time `json:"started"`
}

// Part is one uploaded part of a multipart upload.
type Part struct {
	Number int    `json:"number"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag,omitempty"`
	// CRC32C of the part (4 bytes, big-endian) when the store returns it.
	CRC32C []byte `json:"crc32c,omitempty"`
}
