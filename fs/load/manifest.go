package load

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferryio/ferry/backends"
)

// ManifestFormat names the manifest format, its "format" field.
const ManifestFormat = "ferry-load-manifest/v1"

// ErrManifest is matched by errors reading a manifest file.
var ErrManifest = errors.New("invalid manifest")

// Manifest is a snapshot of a dataset as loaded: every object (files and
// directory markers) with its size, version and checksums, keys relative
// to the store prefix, in ascending key order. Its JSON form is
// deterministic: the same snapshot always gives the same bytes, so the
// SHA-256 of the file (Digest) identifies the snapshot, for run-time
// provenance. Loading with a manifest (Options.Manifest) loads exactly that
// snapshot, reading objects changed since at their recorded version id
// where the store keeps old versions, or fails naming the keys that
// changed.
type Manifest struct {
	Format  string           `json:"format"`
	Objects []ManifestObject `json:"objects"`
}

// ManifestObject is one object of a Manifest.
type ManifestObject struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	// Version is the version the file holds; its ID is set where the store
	// has version ids (see the package documentation for when it is not).
	Version backends.Version `json:"version"`
	// Checksums are those the store gave for the object (md5, crc32c,
	// crc32, crc64nvme, as base64), empty when the store has none.
	Checksums backends.Checksums `json:"checksums,omitzero"`
}

// Encode renders m deterministically, one object per line.
func (m *Manifest) Encode() ([]byte, error) {
	var b strings.Builder
	b.WriteString("{\"format\":")
	f, _ := json.Marshal(ManifestFormat)
	b.Write(f)
	b.WriteString(",\"objects\":[")
	for i, o := range m.Objects {
		if i > 0 {
			b.WriteByte(',')
		}
		line, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		b.WriteString("\n")
		b.Write(line)
	}
	b.WriteString("\n]}\n")
	return []byte(b.String()), nil
}

// Digest is the manifest's identity: "sha256:" and the hex SHA-256 of its
// encoded bytes (what `sha256sum FILE` prints for the written file).
func Digest(encoded []byte) string {
	sum := sha256.Sum256(encoded)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// WriteManifest writes m to path atomically (a temporary file in the same
// directory, renamed) and returns its Digest.
func WriteManifest(path string, m *Manifest) (string, error) {
	b, err := m.Encode()
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return Digest(b), nil
}

// ReadManifest reads a manifest written by WriteManifest. It returns an
// error wrapping ErrManifest for a file of another format, a duplicate key
// or keys out of order.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrManifest, path, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%w %s: format %q, want %q", ErrManifest, path, m.Format, ManifestFormat)
	}
	if !slices.IsSortedFunc(m.Objects, func(a, b ManifestObject) int { return strings.Compare(a.Key, b.Key) }) {
		return nil, fmt.Errorf("%w %s: objects not in ascending key order", ErrManifest, path)
	}
	for i := 1; i < len(m.Objects); i++ {
		if m.Objects[i].Key == m.Objects[i-1].Key {
			return nil, fmt.Errorf("%w %s: key %q twice", ErrManifest, path, m.Objects[i].Key)
		}
	}
	return &m, nil
}
