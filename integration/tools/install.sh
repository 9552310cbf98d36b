#!/usr/bin/env bash
# Installs what ferry's tests and benchmarks need, pinned by version, on a
# fresh Debian machine (as root) or reuses what is already there:
#   - Debian packages: fuse3, rclone, s3fs, docker.io, busybox-static, and
#     nodejs/npm unless node and npm are already on PATH
#   - MinIO and fake-gcs-server, built with `go install` at the versions in
#     integration/testenv/versions.env, cached outside the checkout under
#     ${FERRY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/tools}/<name>-<version>/
#   - Azurite from npm, cached the same way.
# Idempotent: a second run does nothing but check.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../testenv/versions.env
source "$here/../testenv/versions.env"
tools=${FERRY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/tools}
mkdir -p "$tools"

log() { echo "install: $*"; }

# Debian packages, installed only when missing.
need=()
for pkg in fuse3 rclone s3fs docker.io busybox-static; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# Node.js may come from elsewhere than Debian (with npm bundled): judge by the commands.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if ((${#need[@]})); then
	if [ "$(id -u)" != 0 ]; then
		echo "install: missing Debian packages (${need[*]}) and not root: install them first" >&2
		exit 1
	fi
	log "apt-get install ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Go-built servers, one folder per version; built into a temp folder and
# renamed, so an interrupted build never looks installed.
go_tool() { # name module version binary
	local dir="$tools/$1-$3"
	if [ -x "$dir/$4" ]; then return; fi
	log "building $2@$3 (cached in $dir)"
	local tmp
	tmp=$(mktemp -d "$tools/.build-$1-XXXXXX")
	CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install "$2@$3"
	rm -rf "$dir"
	mv "$tmp" "$dir"
}
go_tool minio github.com/minio/minio "$MINIO_VERSION" minio &
minio_pid=$!
go_tool fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION" fake-gcs-server

azdir="$tools/azurite-$AZURITE_VERSION"
if [ ! -x "$azdir/node_modules/.bin/azurite-blob" ]; then
	log "npm install azurite@$AZURITE_VERSION (cached in $azdir)"
	tmp=$(mktemp -d "$tools/.build-azurite-XXXXXX")
	(cd "$tmp" && npm install --silent --no-audit --no-fund --no-save "azurite@$AZURITE_VERSION" >/dev/null)
	rm -rf "$azdir"
	mv "$tmp" "$azdir"
fi
wait "$minio_pid"

# A FUSE mount needs /dev/fuse; load the module where we can.
if [ ! -e /dev/fuse ]; then
	modprobe fuse 2>/dev/null || mknod -m 666 /dev/fuse c 10 229 2>/dev/null || true
fi
log "ready in $tools"
