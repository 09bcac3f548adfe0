//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// buildPlain builds attr of the suite's expression without any
// post-build-hook, as a CI runner without a daemon does, and returns the
// paths nix-build printed.
func (n *nixTool) buildPlain(t *testing.T, ctx context.Context, nonce, attr string) []string {
	t.Helper()
	defer timed(t, "nix-build -A "+attr)()
	file := filepath.Join(n.dir, "e2e.nix")
	if err := os.WriteFile(file, []byte(exprText), 0o644); err != nil {
		t.Fatal(err)
	}
	out := n.run(t, ctx, "nix-build", file, "--argstr", "nonce", nonce, "-A", attr, "--no-out-link")
	paths := strings.Fields(out)
	if len(paths) == 0 {
		t.Fatal("nix-build printed no paths")
	}
	return paths
}

// runCopy runs `nixs3q copy ARGS...` with env and returns what it printed
// and its exit code.
func runCopy(t *testing.T, ctx context.Context, env []string, args ...string) cliResult {
	t.Helper()
	defer timed(t, "nixs3q copy")()
	return runCLI(t, ctx, env, append([]string{"copy"}, args...)...)
}

// copyAndVerify copies the closures of roots with `nixs3q copy` and puts
// the cache through the daemon's checks: every narinfo signed, its NAR
// hashing to NarHash and NarSize, references published (the closure
// invariant), every closure path published with the store's metadata.
func copyAndVerify(t *testing.T, ctx context.Context, n *nixTool, env []string, c cacheView, key keyPair, storeURL string, roots []string) flowResult {
	t.Helper()
	res := flowResult{roots: roots}
	res.closure = n.closure(t, ctx, roots)
	t.Cleanup(func() { n.deletePaths(t, res.closure) })
	res.local = n.pathInfo(t, ctx, res.closure)

	args := append([]string{"--to", storeURL, "--secret-key-file", key.secretFile, "--progress-interval", "100ms"}, roots...)
	r := runCopy(t, ctx, env, args...)
	if r.code != 0 {
		t.Fatalf("nixs3q copy: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Not on a terminal: plain lines and a summary, no control characters.
	if strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("copy wrote terminal control characters into a log:\n%q", r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	summary := lines[len(lines)-1]
	wantSummary := "nixs3q copy: " + itoa(len(res.closure)) + "/" + itoa(len(res.closure)) + " paths done in "
	if !strings.HasPrefix(summary, wantSummary) || !strings.Contains(summary, ": "+itoa(len(res.closure))+" uploaded (") {
		t.Errorf("summary %q, want %q... with all %d paths uploaded", summary, wantSummary, len(res.closure))
	}
	t.Logf("copy printed:\n%s", r.stderr)

	res.cache = verifyCache(t, ctx, c, key.public)
	requirePublished(t, res.cache, res.local)
	if got := narinfoCount(res.cache.keys); got != len(res.closure) {
		t.Errorf("%d narinfos in the cache, want one per closure path (%d)", got, len(res.closure))
	}

	// Again: everything is there, nothing is uploaded.
	r = runCopy(t, ctx, env, append([]string{"--progress", "plain"}, args...)...)
	if r.code != 0 || !strings.Contains(r.stderr, ": 0 uploaded (0 B of NAR), "+itoa(len(res.closure))+" already in the cache") {
		t.Errorf("second copy: exit %d, want 0 with nothing uploaded:\n%s", r.code, r.stderr)
	}
	return res
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestCopyS3: `nixs3q copy` on a runner without a daemon publishes a
// closure with a multipart-sized path to S3 (MinIO), and Nix substitutes
// it into a fresh store.
func TestCopyS3(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-copy")
	key := n.generateKey(t, ctx, "e2e-copy-1")
	roots := n.buildPlain(t, ctx, newNonce(t), "withBig")
	store := "s3://e2e-copy?endpoint=http://" + srv.host + "&region=us-east-1"
	res := copyAndVerify(t, ctx, n, srv.daemonEnv(n), bucket, key, store, roots)
	if len(res.closure) != 6 {
		t.Errorf("closure of 'withBig' has %d paths, want 6", len(res.closure))
	}
	substituteAndCompare(t, ctx, n, bucket, key, res)
}

// TestCopyFile: the same into a file:// cache; and a store path whose
// contents no longer match its NarHash is refused: copy exits 1, names
// the path and the reason, and publishes nothing for it.
func TestCopyFile(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	dir := filepath.Join(t.TempDir(), "cache")
	cache := dirCache{dir: dir}
	key := n.generateKey(t, ctx, "e2e-copy-file-1")
	roots := n.buildPlain(t, ctx, newNonce(t), "all")
	res := copyAndVerify(t, ctx, n, n.env, cache, key, "file://"+dir, roots)
	substituteAndCompare(t, ctx, n, cache, key, res)

	bad := n.addFiles(t, ctx, newNonce(t), 1, 8192)[0]
	t.Cleanup(func() { n.deletePaths(t, []string{bad}) })
	if err := os.Chmod(bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, bytes.Repeat([]byte{'x'}, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	before := cache.list(t, ctx)
	r := runCopy(t, ctx, n.env, "--to", "file://"+dir, "--secret-key-file", key.secretFile, "--progress", "none", bad)
	if r.code != 1 {
		t.Fatalf("copy of a corrupt path: exit %d, want 1:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "failed: "+bad+": ") || !strings.Contains(r.stderr, "NarHash") {
		t.Errorf("copy does not name the corrupt path and its reason:\n%s", r.stderr)
	}
	if after := cache.list(t, ctx); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("a failed copy changed the cache: %d keys before, %d after", len(before), len(after))
	}
	t.Logf("corrupt path refused:\n%s", r.stderr)

	// Bad input changes nothing and exits 2.
	r = runCopy(t, ctx, n.env, "--to", "file://"+dir, "--secret-key-file", key.secretFile, roots[0], "/nix/store/not-a-store-path")
	if r.code != 2 || !strings.Contains(r.stderr, "nothing copied") {
		t.Errorf("copy with a bad path: exit %d, want 2:\n%s", r.code, r.stderr)
	}
}
