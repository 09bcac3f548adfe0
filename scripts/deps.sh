#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine with Go:
#  - Nix (Debian's nix-bin), through apt-get when running as root;
#  - MinIO at a pinned version, built with `go install` into a cache
#    directory that later runs reuse (the build takes minutes).
# Prints the MinIO binary's path as its last line.
set -euo pipefail

MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
CACHE_DIR="${NIXS3Q_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nixs3q}"

log() { echo "deps: $*" >&2; }

if ! command -v nix-store >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "installing nix-bin with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq nix-bin >&2
	else
		log "Nix is missing: install Debian's nix-bin (or any Nix) and re-run"
		exit 1
	fi
fi
log "$(nix --version)"

minio_dir="$CACHE_DIR/minio-$MINIO_VERSION"
if [ ! -x "$minio_dir/minio" ]; then
	log "building MinIO $MINIO_VERSION into $minio_dir (once; takes a few minutes)"
	mkdir -p "$minio_dir.tmp"
	GOBIN="$minio_dir.tmp" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION" >&2
	rm -rf "$minio_dir"
	mv "$minio_dir.tmp" "$minio_dir"
fi
log "MinIO at $minio_dir/minio"
echo "$minio_dir/minio"
