// Package testenv gives tests access to the real tools nixs3q is judged by:
// Nix and an S3 server. A test that needs one calls the matching Require
// function. On a developer machine without the tool the test is skipped; when
// NIXS3Q_REQUIRE_TOOLS=1 (set by the project's test command, and so in CI) a
// missing tool fails the test instead, so nothing silently skips there.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Required reports whether missing tools must fail tests rather than skip them.
func Required() bool { return os.Getenv("NIXS3Q_REQUIRE_TOOLS") == "1" }

// Missing skips the test, or fails it when tools are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("required tool missing: "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// NixConfig is the nix.conf text every test invocation of Nix uses: single-user
// as root, no sandbox, no build users, and no substituters, so Nix never
// reaches for the network.
const NixConfig = "build-users-group =\nsandbox = false\nsubstituters =\nexperimental-features = nix-command\nwarn-dirty = false\n"

// RequireNix checks that the Nix command-line tools are installed and returns
// the environment (os.Environ plus NIX_REMOTE and NIX_CONFIG) to run them with.
func RequireNix(t testing.TB) []string {
	t.Helper()
	for _, tool := range []string{"nix", "nix-store", "nix-build", "nix-instantiate"} {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(t, "%s not on PATH (apt-get install nix-bin)", tool)
		}
	}
	return NixEnv()
}

// NixEnv returns os.Environ with the settings of NixConfig applied.
func NixEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NIX_REMOTE=") || strings.HasPrefix(kv, "NIX_CONFIG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NIX_REMOTE=", "NIX_CONFIG="+NixConfig)
}

// RequireRoot checks that the test runs as root, which it needs to act as
// other users or give files away. The project's test command runs as root,
// so with NIXS3Q_REQUIRE_TOOLS=1 a test run as another user fails instead of
// skipping.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root (the project's test command runs as root)")
	}
}
