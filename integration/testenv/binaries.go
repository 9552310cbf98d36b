package testenv

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

//go:embed versions.env
var versionsEnv string

// ErrNoBinary reports that a server binary is not installed. Main turns it
// into a skip unless FERRY_REQUIRE_SERVERS=1.
var ErrNoBinary = errors.New("server binary not installed (run: bash integration/tools/install.sh)")

// Versions returns the pinned server versions from versions.env.
func Versions() map[string]string {
	v := map[string]string{}
	for _, line := range strings.Split(versionsEnv, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, val, ok := strings.Cut(line, "="); ok {
			v[k] = val
		}
	}
	return v
}

// ToolsDir is where install.sh caches the server binaries:
// $FERRY_TOOLS_DIR, else $XDG_CACHE_HOME/ferry/tools, else ~/.cache/ferry/tools.
func ToolsDir() string {
	if d := os.Getenv("FERRY_TOOLS_DIR"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return filepath.Join(os.TempDir(), "ferry-tools")
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "ferry", "tools")
}

// binary locates one server: the env override (FERRY_MINIO_BIN and so on)
// first, then the cache path keyed by the pinned version.
func binary(envVar, versionKey, dirName, rel string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", envVar, p, err)
		}
		return p, nil
	}
	p := filepath.Join(ToolsDir(), dirName+"-"+Versions()[versionKey], rel)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s: %w", p, ErrNoBinary)
	}
	return p, nil
}

// MinIOBinary, FakeGCSBinary and AzuriteBinary return the paths of the
// pinned server binaries, or an error matching ErrNoBinary.
func MinIOBinary() (string, error) {
	return binary("FERRY_MINIO_BIN", "MINIO_VERSION", "minio", "minio")
}

func FakeGCSBinary() (string, error) {
	return binary("FERRY_FAKE_GCS_BIN", "FAKE_GCS_VERSION", "fake-gcs-server", "fake-gcs-server")
}

func AzuriteBinary() (string, error) {
	return binary("FERRY_AZURITE_BIN", "AZURITE_VERSION", "azurite", filepath.Join("node_modules", ".bin", "azurite-blob"))
}
