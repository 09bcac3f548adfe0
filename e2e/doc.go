//go:build e2e

// Package e2e is nixs3q's end-to-end suite: real processes throughout. It
// builds the nixs3q and nixs3q-hook binaries, runs the daemon as a
// subprocess against MinIO or a local directory, builds derivations with
// nix-build and the hook as post-build-hook, and judges the cache the way
// users do: by substituting from it with Nix into a fresh store, with
// signatures required, and comparing every path byte for byte with the
// original. It also reads every narinfo the cache holds and checks the
// cache's invariants: each narinfo is signed by the daemon's key, its NAR
// is present and hashes to the recorded FileHash and NarHash, and the
// narinfos of all its references are present.
//
// Scenarios: both spellings of an S3 endpoint (with zstd, xz and a
// multipart NAR), a file:// cache (uncompressed), dedup of paths already in
// the cache, the hook with the daemon down or stalled (spool), kill -9 in
// the middle of a large queue, bad credentials, an upload the server
// refuses for good (failed list, wait, retry), hook latency,
// scripts/try.sh, the README's "try it" command, push --wait ahead of a
// long backlog behind a slow cache (a latency-adding proxy on loopback),
// nixs3q copy without a daemon (S3, file://, a corrupt store path, and
// its progress line on a pseudo-terminal), and `nixs3q verify`: on
// MinIO and a local directory, a cache broken in every way verify knows
// (NAR deleted or truncated, a reference's narinfo deleted, a narinfo
// corrupted or signed by another key, an upload abandoned, a NAR gone
// whose path the local store lost) is reported exactly, mended by
// --repair and substituted from again; and verify stays clean on a bucket
// that three daemons publish into.
//
// Run it with
//
//	go test -tags e2e -count=1 -v ./e2e/
//
// It needs Nix and MinIO (see scripts/deps.sh); without them the tests
// skip, or fail when NIXS3Q_REQUIRE_TOOLS=1. Nix always runs with the
// environment of testenv.NixEnv, so it never reaches the network.
package e2e
