package uploader_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/local"
)

// TestNixCopyFromCache uploads real store paths into a file:// cache and has
// real Nix substitute them into a fresh store, checking signatures: the
// uploader's key is accepted, any other key refused.
func TestNixCopyFromCache(t *testing.T) {
	env := testenv.RequireNix(t)
	_, dir, out, _ := uploader.AddToStoreForTest(t, env)
	key, err := nix.GenerateKey("nixs3q-test-1")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := nix.GenerateKey("nixs3q-test-1")

	for _, compression := range []string{"zstd", "xz", "none"} {
		t.Run(compression, func(t *testing.T) {
			cacheDir := t.TempDir()
			cache, err := local.New(cacheDir)
			if err != nil {
				t.Fatal(err)
			}
			cfg := uploader.DefaultConfig()
			cfg.Compression = compression
			u, err := uploader.New(cfg, cache, uploader.NixCLI{Env: env}, nil, key, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := u.EnsureCacheInfo(ctx); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{out, dir} {
				if _, err := u.Upload(ctx, p); err != nil {
					t.Fatal(err)
				}
			}

			copyTo := func(trusted nix.PublicKey) (string, error) {
				root := filepath.Join(t.TempDir(), "root")
				cmd := exec.Command("nix", "--extra-experimental-features", "nix-command",
					"copy", "--from", "file://"+cacheDir, "--to", root,
					"--option", "trusted-public-keys", trusted.String(), out, dir)
				cmd.Env = env
				msg, err := cmd.CombinedOutput()
				return root, wrapOutput(err, msg)
			}
			root, err := copyTo(key.Public())
			if err != nil {
				t.Fatalf("nix copy with the uploader's key: %v", err)
			}
			for _, p := range []string{out, dir} {
				cmd := exec.Command("nix-store", "--store", root, "--query", "--hash", p)
				cmd.Env = env
				got, err := cmd.Output()
				if err != nil {
					t.Fatalf("query %s in the copy: %v", p, wrapOutput(err, nil))
				}
				cmd = exec.Command("nix-store", "--query", "--hash", p)
				cmd.Env = env
				want, err := cmd.Output()
				if err != nil || string(got) != string(want) {
					t.Errorf("%s: copied NarHash %q, store has %q (%v)", p, got, want, err)
				}
			}
			// out is input-addressed: only a trusted signature admits it.
			if _, err := copyTo(other.Public()); err == nil || !strings.Contains(err.Error(), "lacks a valid signature") {
				t.Errorf("nix copy trusting another key: %v, want a signature error", err)
			}
		})
	}
}

type outputError struct {
	err error
	out string
}

func (e *outputError) Error() string { return e.err.Error() + ": " + e.out }
func (e *outputError) Unwrap() error { return e.err }

func wrapOutput(err error, out []byte) error {
	if err == nil {
		return nil
	}
	if ee, ok := err.(*exec.ExitError); ok && len(out) == 0 {
		out = ee.Stderr
	}
	return &outputError{err: err, out: strings.TrimSpace(string(out))}
}
