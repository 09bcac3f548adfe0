#!/usr/bin/env bash
# Try nixs3q on this machine in a minute, without S3 and without the network:
# build nixs3q, start its daemon on a local binary cache (file:///tmp/nix-cache),
# add a small file to the Nix store, push it, wait for the upload, show the
# cache, substitute the path back from it as a Nix client would, and stop.
#
# Needs Go and Nix (root single-user, or a user of a multi-user install).
# Run it from a checkout:   ./scripts/try.sh
# It keeps its key, queue and socket in /tmp/nixs3q-try (NIXS3Q_TRY_DIR) and
# the cache in /tmp/nix-cache (NIXS3Q_TRY_CACHE); run it again at will.
set -euo pipefail
umask 077 # the signing key lives in the try directory

try_dir="${NIXS3Q_TRY_DIR:-/tmp/nixs3q-try}"
cache_dir="${NIXS3Q_TRY_CACHE:-/tmp/nix-cache}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
die() { printf 'try.sh: %s\n' "$*" >&2; exit 1; }

[ -f "$repo/go.mod" ] && [ -d "$repo/cmd/nixs3q" ] || die "run me from a nixs3q checkout: $repo has no cmd/nixs3q"
command -v go >/dev/null || die "Go is missing: install it from https://go.dev/dl/"
command -v nix-store >/dev/null || die "Nix is missing: see https://nixos.org/download/"
case "$try_dir$cache_dir" in *[[:space:]]*) die "paths with spaces are not supported" ;; esac
mkdir -p "$try_dir" "$cache_dir"
for d in "$try_dir" "$cache_dir"; do
	[ -O "$d" ] || die "$d belongs to another user; set NIXS3Q_TRY_DIR and NIXS3Q_TRY_CACHE to directories of yours"
done

bin="$(mktemp -d "${TMPDIR:-/tmp}/nixs3q-bin.XXXXXX")"
daemon_pid=""
cleanup() {
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$bin"
}
trap cleanup EXIT

say "Building nixs3q and nixs3q-hook (the first build takes a minute or two)"
(cd "$repo" && go build -o "$bin/" ./cmd/nixs3q ./cmd/nixs3q-hook)
nixs3q="$bin/nixs3q"
echo "    $nixs3q, $bin/nixs3q-hook"

key="$try_dir/signing-key.sec"
pub="$try_dir/signing-key.pub"
if [ -s "$key" ] && [ -s "$pub" ]; then
	say "Using the signing key in $key"
else
	say "Generating a signing key in $key"
	rm -f "$key" "$pub"
	nix-store --generate-binary-cache-key "nixs3q-try-1" "$key" "$pub"
fi
public_key="$(cat "$pub")"
echo "    public key: $public_key"

socket="$try_dir/nixs3q.sock"
export NIXS3Q_SOCKET="$socket"
say "Starting the daemon: nixs3q daemon --store file://$cache_dir"
"$nixs3q" daemon --store "file://$cache_dir" --secret-key-file "$key" \
	--state-dir "$try_dir/state" --socket "$socket" --log-format console \
	2>"$try_dir/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do
	"$nixs3q" status >/dev/null 2>&1 && break
	kill -0 "$daemon_pid" 2>/dev/null || { cat "$try_dir/daemon.log" >&2; die "the daemon did not start"; }
	sleep 0.1
done
"$nixs3q" status >/dev/null || die "the daemon does not answer on $socket (log: $try_dir/daemon.log)"
echo "    pid $daemon_pid, socket $socket, log $try_dir/daemon.log"

say "Adding a small file to the Nix store"
file="$try_dir/hello-nixs3q.txt"
printf 'Hello from nixs3q, %s (%s)\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$RANDOM$RANDOM" >"$file"
path="$(nix-store --add "$file")"
echo "    $path"

say "nixs3q push $path"
"$nixs3q" push "$path"

say "nixs3q wait"
"$nixs3q" wait --timeout 60s
echo "    queue drained"

say "nixs3q status"
"$nixs3q" status

say "The cache in $cache_dir"
(cd "$cache_dir" && find . -type f | sed 's|^\./||' | sort | sed 's/^/    /')
hash_part="$(basename "$path" | cut -c1-32)"
echo
echo "    $hash_part.narinfo:"
sed 's/^/      /' "$cache_dir/$hash_part.narinfo"

say "Substituting the path from the cache into a scratch store, as a client would"
client_store="$try_dir/client-store"
if [ -d "$client_store" ]; then
	chmod -R u+w "$client_store"
	rm -rf "$client_store"
fi
nix --extra-experimental-features nix-command copy --from "file://$cache_dir" \
	--to "local?root=$client_store" \
	--option trusted-public-keys "$public_key" --option require-sigs true "$path"
if cmp -s <(nix-store --store "local?root=$client_store" --dump "$path") <(nix-store --dump "$path"); then
	echo "    $client_store$path is identical to the original"
else
	die "the substituted copy differs from the original"
fi

say "To use this cache from another Nix, add to its nix.conf:"
echo "    extra-substituters = file://$cache_dir"
echo "    extra-trusted-public-keys = $public_key"
echo "  or copy by hand:"
echo "    nix copy --from file://$cache_dir --option trusted-public-keys '$public_key' $path"
echo "  On a builder, make Nix queue every build (nix.conf):"
echo "    post-build-hook = /path/to/nixs3q-hook"

say "Stopping the daemon"
kill -TERM "$daemon_pid"
if wait "$daemon_pid"; then
	echo "    stopped"
else
	die "the daemon exited with status $? (log: $try_dir/daemon.log)"
fi
daemon_pid=""
echo
echo "Done."
