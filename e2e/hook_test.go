//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

// TestHookLatency: 20 runs of the hook with the daemon up. Every run must
// be acknowledged (nothing printed, nothing spooled) well within the hook's
// bound; the median is logged for the CI record.
func TestHookLatency(t *testing.T) {
	const runs = 20
	ctx := testContext(t)
	n := newNixTool(t)
	dir := filepath.Join(t.TempDir(), "cache")
	key := n.generateKey(t, ctx, "e2e-hook-1")
	d := startDaemon(t, newDaemonOpts(t, "file://"+dir, key.secretFile, n.env))
	path := n.addFiles(t, ctx, newNonce(t), 1, 1024)[0]

	var took []time.Duration
	for range runs {
		r := runHook(t, d.opts.socket, d.opts.stateDir, []string{path})
		if r.stderr != "" {
			t.Fatalf("hook with the daemon up printed %q", r.stderr)
		}
		took = append(took, r.took)
	}
	if files := spoolFiles(t, d.opts.stateDir); len(files) != 0 {
		t.Fatalf("hook spooled %d file(s) with the daemon up", len(files))
	}
	slices.Sort(took)
	median := (took[runs/2-1] + took[runs/2]) / 2
	t.Logf("hook with the daemon up, %d runs: median %s, min %s, max %s", runs,
		median.Round(time.Microsecond), took[0].Round(time.Microsecond), took[runs-1].Round(time.Microsecond))
	if took[runs-1] > hookBound {
		t.Errorf("slowest hook run took %s, want under %s", took[runs-1], hookBound)
	}
	if median > 250*time.Millisecond {
		t.Errorf("median hook run took %s; an acknowledged enqueue should take milliseconds", median)
	}
	waitDrained(t, ctx, d.opts.socket, time.Minute)
	requirePublished(t, verifyCache(t, ctx, dirCache{dir: dir}, key.public), n.pathInfo(t, ctx, []string{path}))
}

// TestTryScript runs scripts/try.sh, the README's "try it" command, twice
// (a fresh start, then with the key and cache of the first run), in private
// directories, and checks what it prints and what it leaves in the cache.
func TestTryScript(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	root := t.TempDir()
	tryDir := filepath.Join(root, "nixs3q-try")
	cacheDir := filepath.Join(root, "nix-cache")
	env := append(slices.Clone(n.env), "NIXS3Q_TRY_DIR="+tryDir, "NIXS3Q_TRY_CACHE="+cacheDir,
		"TMPDIR="+root, "GOCACHE="+bin.goCache)
	script, err := filepath.Abs(filepath.Join("..", "scripts", "try.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i, wantKey := range []string{"Generating a signing key", "Using the signing key"} {
		start := time.Now()
		out := runScript(t, ctx, script, env)
		t.Logf("try.sh run %d took %s", i+1, time.Since(start).Round(time.Millisecond))
		for _, want := range []string{
			wantKey,
			"queued 1 path(s): 1 new",
			"queue drained",
			"0 pending, 0 in flight, 0 failed",
			".narinfo",
			"is identical to the original",
			"extra-trusted-public-keys = nixs3q-try-1:",
			"stopped",
			"Done.",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("try.sh run %d: output lacks %q:\n%s", i+1, want, out)
			}
		}
		if m := uploadedRE.FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(i+1) {
			t.Errorf("try.sh run %d: status does not show %d path(s) uploaded in all: %q", i+1, i+1, m)
		}
		if strings.Contains(out, "\033[") {
			t.Errorf("try.sh printed terminal escapes to a pipe")
		}
		for _, f := range strings.Fields(out) {
			if strings.HasPrefix(f, "/nix/store/") && strings.HasSuffix(f, "-hello-nixs3q.txt") && !slices.Contains(paths, f) {
				paths = append(paths, f)
			}
		}
	}
	if len(paths) != 2 {
		t.Fatalf("want one new store path per run, found %q", paths)
	}
	pkText, err := os.ReadFile(filepath.Join(tryDir, "signing-key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pk, err := nix.ParsePublicKey(string(pkText))
	if err != nil {
		t.Fatal(err)
	}
	requirePublished(t, verifyCache(t, ctx, dirCache{dir: cacheDir}, pk), n.pathInfo(t, ctx, paths))
	if _, err := os.Stat(filepath.Join(tryDir, "nixs3q.sock")); err == nil {
		t.Errorf("the daemon's socket is left behind after try.sh stopped it")
	}
}

// uploadedRE finds the count of uploaded paths in `nixs3q status` output.
var uploadedRE = regexp.MustCompile(`(?m)^uploaded: +(\d+) paths`)

func runScript(t *testing.T, ctx context.Context, script string, env []string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("try.sh: %v\n%s", err, out.String())
	}
	return out.String()
}
