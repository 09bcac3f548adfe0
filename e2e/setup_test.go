//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv/minioadmin"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/setup"
)

// TestInitThenDoctor is the README's "Setting up a cache" on an empty MinIO:
// `nixs3q init --public-read` with the server's admin credentials, the
// daemon with a user holding only the IAM policy init printed, a build
// published through the hook, Nix substituting anonymously over plain HTTP,
// init again changing nothing, and `nixs3q doctor` finding nothing to warn
// about and leaving nothing behind.
func TestInitThenDoctor(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	const bucket = "e2e-init"
	keyFile := filepath.Join(t.TempDir(), "cache.sec")
	store := "s3://" + bucket + "?endpoint=" + srv.m.Endpoint + "&region=" + srv.m.Region
	admin := srv.daemonEnv(n)

	first := runCLI(t, ctx, admin, "init", "--store", store, "--secret-key-file", keyFile, "--key-name", "e2e-init-1", "--public-read")
	if first.code != 0 {
		t.Fatalf("init: exit %d\n%s%s", first.code, first.stdout, first.stderr)
	}
	t.Logf("init:\n%s", first.stdout)
	for _, want := range []string{"created bucket " + bucket, "wrote nix-cache-info", "generated signing key e2e-init-1", "anyone may read"} {
		if !strings.Contains(first.stdout, want) {
			t.Errorf("init output lacks %q", want)
		}
	}
	pub := printedPublicKey(t, first.stdout)
	if !strings.Contains(first.stdout, "extra-substituters = "+srv.m.Endpoint+"/"+bucket) {
		t.Errorf("init does not print the HTTP substituter URL %s/%s", srv.m.Endpoint, bucket)
	}

	second := runCLI(t, ctx, admin, "init", "--store", store, "--secret-key-file", keyFile, "--public-read")
	if second.code != 0 || !strings.Contains(second.stdout, "Nothing to do") || strings.Contains(second.stdout, "done ") {
		t.Fatalf("init again: exit %d, want a run that changes nothing and says so:\n%s%s", second.code, second.stdout, second.stderr)
	}
	if printedPublicKey(t, second.stdout).String() != pub.String() {
		t.Fatal("init again printed another public key")
	}

	writer := minioadmin.AddUser(t, srv.m, "builder", setup.WriterPolicy(bucket, false))
	env := append(srv.baseEnv(n), writer.Env(srv.m.Region)...)
	d := startDaemon(t, newDaemonOpts(t, store, keyFile, env))
	cache := bucketCache{endpoint: srv.m.Endpoint, bucket: bucket, s3: srv.m.Client()}
	key := keyPair{secretFile: keyFile, public: pub}
	res := buildAndPublish(t, ctx, n, d, cache, key, "small")
	substituteAndCompare(t, ctx, n, cache, key, res)
	before := cache.list(t, ctx)

	doctorArgs := []string{"doctor", "--store", store, "--secret-key-file", keyFile, "--public-key", pub.String(),
		"--public-url", srv.m.Endpoint + "/" + bucket, "--socket", d.opts.socket}
	doc := runCLI(t, ctx, env, doctorArgs...)
	t.Logf("doctor:\n%s", doc.stdout)
	if doc.code != 0 || strings.Contains(doc.stdout, "WARN") || strings.Contains(doc.stdout, "FAIL") {
		t.Fatalf("doctor on a correct set-up: exit %d\n%s%s", doc.code, doc.stdout, doc.stderr)
	}
	for _, want := range []string{"public-narinfo", "signed by e2e-init-1", "daemon"} {
		if !strings.Contains(doc.stdout, want) {
			t.Errorf("doctor output lacks %q", want)
		}
	}
	if after := cache.list(t, ctx); !slices.Equal(after, before) {
		t.Errorf("doctor changed the bucket: %d objects before, %d after: %q", len(before), len(after), after)
	}

	js := runCLI(t, ctx, env, append(doctorArgs, "--json")...)
	var report struct {
		Checks   []setup.Check `json:"checks"`
		ExitCode int           `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(js.stdout), &report); err != nil || js.code != 0 || report.ExitCode != 0 || len(report.Checks) < 20 {
		t.Fatalf("doctor --json: exit %d, %v: %s", js.code, err, js.stdout)
	}

	// The daemon's own configuration, when no flag names the cache.
	bare := runCLI(t, ctx, env, "doctor", "--socket", d.opts.socket)
	if bare.code != 0 || !strings.Contains(bare.stdout, "(the daemon's)") || !strings.Contains(bare.stdout, "the daemon signs with "+pub.String()) {
		t.Fatalf("doctor without --store: exit %d\n%s%s", bare.code, bare.stdout, bare.stderr)
	}

	// A broken set-up exits 2 and names the problem.
	broken := runCLI(t, ctx, env, "doctor", "--store", strings.Replace(store, bucket, "e2e-missing", 1), "--no-daemon")
	if broken.code != 2 || !strings.Contains(broken.stdout, "bucket e2e-missing does not exist") {
		t.Fatalf("doctor on a missing bucket: exit %d\n%s%s", broken.code, broken.stdout, broken.stderr)
	}
}

// runCLI runs the nixs3q binary with env and returns its output and exit
// status.
func runCLI(t *testing.T, ctx context.Context, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin.nixs3q, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("nixs3q %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// printedPublicKey finds the public key in init's output.
func printedPublicKey(t *testing.T, out string) nix.PublicKey {
	t.Helper()
	_, after, ok := strings.Cut(out, "== Public key")
	if !ok {
		t.Fatalf("init printed no public key:\n%s", out)
	}
	for _, line := range strings.Split(after, "\n") {
		if pk, err := nix.ParsePublicKey(line); err == nil {
			return pk
		}
		if strings.HasPrefix(line, "==") {
			break
		}
	}
	t.Fatalf("init printed no public key:\n%s", out)
	var pk nix.PublicKey
	return pk
}
