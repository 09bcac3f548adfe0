#!/usr/bin/env bash
# Computes the vendorHash that flake.nix's buildGoModule needs: the NAR hash of
# the directory `go mod vendor` makes, exactly as nixpkgs computes it.
#
#   scripts/vendor-hash.sh            print the hash
#   scripts/vendor-hash.sh --check    fail if flake.nix holds another hash
#   scripts/vendor-hash.sh --update   write the hash into flake.nix
#
# It works on a temporary copy of the module's Go files, so the work tree never
# gets a vendor/ directory. Modules come from the Go module cache (or GOPROXY);
# Nix runs with substituters disabled and never touches the network.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
flake="$root/flake.nix"
mode="${1:-print}"
case "$mode" in
print | --check | --update) ;;
*)
	echo "usage: $0 [--check | --update]" >&2
	exit 2
	;;
esac

for tool in go nix; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "vendor-hash: $tool not found on PATH" >&2
		exit 1
	fi
done

tmp="$(mktemp -d)"
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

# Only go.mod, go.sum and Go files decide what `go mod vendor` writes; flake.nix
# gives buildGoModule the same file set.
(
	cd "$root"
	find . \( -path ./.git -o -path ./vendor -o -path ./bin \) -prune -o \
		-type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 |
		tar --null -T - -cf -
) | tar -C "$tmp" -xf -

# As in nixpkgs' goModules derivation: no workspace, no toolchain switch, no
# -mod flag (so an untidy go.mod fails here as it would there).
(
	cd "$tmp"
	GOWORK=off GOTOOLCHAIN=local GOFLAGS= go mod vendor
	mkdir -p vendor
) >&2

hash="$(NIX_REMOTE= NIX_CONFIG=$'substituters =\nexperimental-features = nix-command' \
	nix --extra-experimental-features nix-command hash path "$tmp/vendor")"

pattern='^([[:space:]]*vendorHash = ")([^"]*)(";.*)$'
current() {
	local n
	n="$(grep -cE "$pattern" "$flake" || true)"
	if [ "$n" != 1 ]; then
		echo "vendor-hash: expected exactly one 'vendorHash = \"...\";' line in $flake, found $n" >&2
		exit 1
	fi
	sed -nE "s/$pattern/\\2/p" "$flake"
}

case "$mode" in
print)
	echo "$hash"
	;;
--check)
	have="$(current)"
	if [ "$have" != "$hash" ]; then
		echo "flake.nix vendorHash is stale: run scripts/vendor-hash.sh --update" >&2
		echo "  flake.nix: $have" >&2
		echo "  actual:    $hash" >&2
		exit 1
	fi
	echo "flake.nix vendorHash is up to date: $hash"
	;;
--update)
	have="$(current)"
	if [ "$have" = "$hash" ]; then
		echo "flake.nix vendorHash already up to date: $hash"
		exit 0
	fi
	sed -i -E "s|$pattern|\\1$hash\\3|" "$flake"
	echo "flake.nix vendorHash: $have -> $hash"
	;;
esac
