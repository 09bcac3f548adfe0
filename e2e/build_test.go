//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

// buildsText is the expression of the build-trace scenarios: small,
// quick derivations, each taking the nonce.
//
//   - logged prints lines that must come back from `nix log`;
//   - secret is what the filter scenario excludes, usesSecret refers to it;
//   - ca is a content-addressed derivation (ca-derivations), caTop one
//     with ca as input.
const buildsText = `{ nonce }:
let
  mk = name: script: attrs: derivation ({
    inherit name nonce;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
  } // attrs);
  secret = mk "e2e-secret" ''/bin/echo "secret $nonce" > $out'' {};
  usesSecret = mk "e2e-uses-secret" ''/bin/echo "uses ${secret}" > $out'' {};
  logged = mk "e2e-logged" ''
    /bin/echo "stdout of the build $nonce"
    /bin/echo "stderr of the build $nonce" >&2
    /bin/echo ok > $out
  '' {};
  caAttrs = { __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
  ca = mk "e2e-ca" ''
    /bin/echo "building the CA derivation $nonce"
    /bin/echo "ca $nonce" > $out
  '' caAttrs;
  caTop = mk "e2e-ca-top" ''
    /bin/echo "building the CA derivation on top $nonce"
    /bin/echo "top of ${ca}" > $out
  '' caAttrs;
in { inherit secret usesSecret logged ca caTop; filtered = [ usesSecret logged ]; }
`

// caFlags turn on content-addressed derivations for one Nix command.
var caFlags = []string{"--extra-experimental-features", "ca-derivations"}

// buildExpr builds attr of buildsText with the hook and returns the
// printed paths and the derivations nix-build reported building.
func (n *nixTool) buildExpr(t *testing.T, ctx context.Context, nonce, attr string, h hookSetup, extra ...string) []string {
	t.Helper()
	defer timed(t, "nix-build -A "+attr+" with the hook")()
	file := filepath.Join(n.dir, "builds.nix")
	if err := os.WriteFile(file, []byte(buildsText), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{file, "--argstr", "nonce", nonce, "-A", attr, "--no-out-link",
		"--option", "post-build-hook", bin.hook}, extra...)
	out, errOut, err := n.try(ctx, []string{"NIXS3Q_SOCKET=" + h.socket, "NIXS3Q_STATE_DIR=" + h.stateDir}, "nix-build", args...)
	if err != nil || !strings.Contains(errOut, "running post-build-hook") {
		t.Fatalf("nix-build: %v (the post-build-hook must run)\n%s", err, errOut)
	}
	return strings.Fields(out)
}

// freshStore returns the URL of a new, empty local store.
func (n *nixTool) freshStore(t *testing.T) (string, string) {
	t.Helper()
	root, err := os.MkdirTemp(n.dir, "fresh-store-")
	if err != nil {
		t.Fatal(err)
	}
	return "local?root=" + root, root
}

// nixLog runs `nix log` for path against a fresh store whose only
// substituter is cacheURL, so that the log can only come from the cache.
func (n *nixTool) nixLog(t *testing.T, ctx context.Context, cacheURL, path string) string {
	t.Helper()
	store, _ := n.freshStore(t)
	out, errOut, err := n.try(ctx, nil, "nix", "log", "--store", store, "--option", "substituters", cacheURL, path)
	if err != nil {
		t.Fatalf("nix log %s from %s: %v\n%s", path, cacheURL, err, errOut)
	}
	return out
}

func (n *nixTool) deriver(t *testing.T, ctx context.Context, path string) string {
	t.Helper()
	return strings.TrimSpace(n.run(t, ctx, "nix-store", "-q", "--deriver", path))
}

// TestFiltersAndLogsFile: a file:// cache with --exclude and
// --upload-logs all. The excluded path and the path referring to it stay
// out of the cache and are counted in status, as the README says; the
// other build is published with its log, which real `nix log` prints
// through the cache.
func TestFiltersAndLogsFile(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	dir := filepath.Join(t.TempDir(), "cache")
	key := n.generateKey(t, ctx, "e2e-builds-1")
	opts := newDaemonOpts(t, "file://"+dir, key.secretFile, n.env)
	opts.flags = []string{"--upload-logs", "all", "--exclude", "^e2e-secret"}
	d := startDaemon(t, opts)

	nonce := newNonce(t)
	roots := n.buildExpr(t, ctx, nonce, "filtered", hookSetup{socket: opts.socket, stateDir: opts.stateDir})
	waitDrained(t, ctx, opts.socket, time.Minute)
	t.Cleanup(func() { n.deletePaths(t, n.closure(t, ctx, roots)) })
	var uses, logged, secret string
	for _, p := range n.closure(t, ctx, roots) {
		switch {
		case strings.HasSuffix(p, "-e2e-uses-secret"):
			uses = p
		case strings.HasSuffix(p, "-e2e-logged"):
			logged = p
		case strings.HasSuffix(p, "-e2e-secret"):
			secret = p
		}
	}
	cache := dirCache{dir: dir}
	for p, want := range map[string]bool{logged: true, uses: false, secret: false} {
		sp, err := nix.ParseStorePath("/nix/store", p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = os.Stat(filepath.Join(dir, sp.HashPart+".narinfo"))
		if (err == nil) != want {
			t.Errorf("%s: narinfo present = %v, want %v", p, err == nil, want)
		}
	}
	verifyCache(t, ctx, cache, key.public)
	st := statusFull(t, ctx, opts.socket)
	if st.Excluded != 1 || st.HeldBack != 1 {
		t.Errorf("status counts %d excluded and %d held back, want 1 and 1", st.Excluded, st.HeldBack)
	}
	text := cli(t, ctx, opts.socket, "status").stdout
	if !strings.Contains(text, "1 queued paths excluded") || !strings.Contains(text, "held back by "+secret) {
		t.Errorf("status does not show the filtered paths:\n%s", text)
	}
	if !strings.Contains(d.log(), "not uploading: excluded by a filter") {
		t.Error("the daemon's log does not report the excluded path")
	}

	// The log: plain text in the directory, and `nix log` through the cache.
	drv := n.deriver(t, ctx, logged)
	raw, err := os.ReadFile(filepath.Join(dir, "log", filepath.Base(drv)))
	if err != nil || !strings.Contains(string(raw), "stdout of the build "+nonce) {
		t.Fatalf("log/%s: %v\n%s", filepath.Base(drv), err, raw)
	}
	// Nix reads the deriver from the narinfo, then log/<drv>.
	out := n.nixLog(t, ctx, "file://"+dir, logged)
	for _, line := range []string{"stdout of the build " + nonce, "stderr of the build " + nonce} {
		if !strings.Contains(out, line) {
			t.Errorf("nix log %s through the cache lacks %q:\n%s", logged, line, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "log", filepath.Base(n.deriver(t, ctx, secret)))); err == nil {
		t.Error("the excluded derivation's log was uploaded")
	}
	if st.Logs != 2 { // logged and usesSecret
		t.Errorf("status counts %d logs, want 2", st.Logs)
	}

	// A CA build: its realisation lands in the directory in both layouts,
	// and a fresh CA-enabled store substitutes from file://.
	caOut := n.buildExpr(t, ctx, nonce, "ca", hookSetup{socket: opts.socket, stateDir: opts.stateDir}, caFlags...)
	waitDrained(t, ctx, opts.socket, time.Minute)
	t.Cleanup(func() { n.deletePaths(t, caOut) })
	caDrv := n.deriver(t, ctx, caOut[0])
	if _, err := os.Stat(filepath.Join(dir, "build-trace-v2", filepath.Base(caDrv), "out.doi")); err != nil {
		t.Errorf("build trace entry: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "realisations", "sha256:*!out.doi")); len(m) != 1 {
		t.Errorf("Nix 2.8 realisations: %v, want one", m)
	}
	n.substituteCA(t, ctx, nonce, "ca", "file://"+dir, key, caOut[0])
}

// TestLogsAndCAS3: MinIO read over plain HTTP, as clients do. The build log
// (gzip, Content-Encoding gzip) comes back through `nix log`; a
// content-addressed derivation built with the hook is substituted into a
// fresh CA-enabled store from its realisation, without building.
func TestLogsAndCAS3(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-builds")
	key := n.generateKey(t, ctx, "e2e-builds-s3-1")
	opts := newDaemonOpts(t, "s3://e2e-builds?endpoint="+srv.m.Endpoint+"&region=us-east-1", key.secretFile, srv.daemonEnv(n))
	opts.flags = []string{"--upload-logs", "all"}
	startDaemon(t, opts)
	h := hookSetup{socket: opts.socket, stateDir: opts.stateDir}

	nonce := newNonce(t)
	logged := n.buildExpr(t, ctx, nonce, "logged", h)
	caOut := n.buildExpr(t, ctx, nonce, "ca", h, caFlags...)
	waitDrained(t, ctx, opts.socket, time.Minute)
	toDelete := append(logged, caOut...)
	t.Cleanup(func() { n.deletePaths(t, toDelete) }) // one call: Nix deletes in reference order
	verifyCache(t, ctx, bucket, key.public)

	out := n.nixLog(t, ctx, bucket.nixURL(), logged[0])
	if !strings.Contains(out, "stdout of the build "+nonce) {
		t.Errorf("nix log through the bucket lacks the build's output:\n%s", out)
	}

	// The realisation, in both layouts.
	drv := n.deriver(t, ctx, caOut[0])
	keys := bucket.list(t, ctx)
	trace := "build-trace-v2/" + filepath.Base(drv) + "/out.doi"
	if !slices.Contains(keys, trace) || !slices.ContainsFunc(keys, func(k string) bool {
		return strings.HasPrefix(k, "realisations/sha256:") && strings.HasSuffix(k, "!out.doi")
	}) {
		t.Fatalf("realisations missing from the bucket: %v", keys)
	}

	n.substituteCA(t, ctx, nonce, "ca", bucket.nixURL(), key, caOut[0])

	// A CA derivation with a CA input: Nix 2.8 reports the resolved and the
	// original derivation; the original's realisation depends on ca's.
	topOut := n.buildExpr(t, ctx, nonce, "caTop", h, caFlags...)
	waitDrained(t, ctx, opts.socket, time.Minute)
	toDelete = append(toDelete, topOut...)
	n.substituteCA(t, ctx, nonce, "caTop", bucket.nixURL(), key, topOut[0])
	st := statusFull(t, ctx, opts.socket)
	if st.Realisations < 1 || st.Logs < 2 {
		t.Errorf("status counts %d realisations and %d logs, want at least 1 and 2", st.Realisations, st.Logs)
	}
}

// substituteCA has a fresh store with ca-derivations evaluate the CA
// derivation of nonce and substitute its output want from cacheURL: Nix
// 2.8 reads realisations/<id>.doi, checks its signature, then fetches the
// narinfo and NAR. Building instead is a failure.
func (n *nixTool) substituteCA(t *testing.T, ctx context.Context, nonce, attr, cacheURL string, key keyPair, want string) {
	t.Helper()
	defer timed(t, "substituting the CA output into a fresh CA-enabled store")()
	store, _ := n.freshStore(t)
	file := filepath.Join(n.dir, "builds.nix")
	args := append([]string{file, "--argstr", "nonce", nonce, "-A", attr, "--no-out-link", "--store", store,
		"--option", "substituters", cacheURL, "--option", "trusted-public-keys", key.public.String(),
		"--option", "require-sigs", "true"}, caFlags...)
	got, errOut, err := n.try(ctx, nil, "nix-build", args...)
	if err != nil {
		t.Fatalf("nix-build in a fresh CA store from %s: %v\n%s", cacheURL, err, errOut)
	}
	if strings.TrimSpace(got) != want {
		t.Errorf("fresh store realised %q, want %q", strings.TrimSpace(got), want)
	}
	if strings.Contains(errOut, "building the CA derivation") || strings.Contains(errOut, "building '") {
		t.Errorf("the fresh store built the CA derivation instead of substituting it:\n%s", errOut)
	}
	if !strings.Contains(errOut, "copying path") {
		t.Errorf("nix-build did not say it copied the output from the cache:\n%s", errOut)
	}
}
