package setup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/nix"
)

func TestEnsureKeyGeneratesPrivateFile(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	file := filepath.Join(t.TempDir(), "cache.sec")
	key, created, err := ensureKey(file, "cache-1")
	if err != nil || !created {
		t.Fatalf("ensureKey = %v, created %v", err, created)
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	loaded, err := nix.LoadSecretKeyFile(file)
	if err != nil || loaded.String() != key.String() || key.Name != "cache-1" {
		t.Fatalf("written key does not load back: %v", err)
	}

	again, created, err := ensureKey(file, "other-name")
	if err != nil || created || again.String() != key.String() {
		t.Fatalf("second ensureKey: created %v, err %v, same key %v", created, err, again.String() == key.String())
	}
}

func TestEnsureKeyNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"malformed": "not a key",
		"public":    mustKey(t).Public().String(),
	} {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ensureKey(file, "x-1"); err == nil {
			t.Errorf("%s: ensureKey accepted the file", name)
		}
		if got, _ := os.ReadFile(file); string(got) != content {
			t.Errorf("%s: the file was changed to %q", name, got)
		}
	}
	if _, _, err := ensureKey(filepath.Join(dir, "a", "b.sec"), "x-1"); err == nil {
		t.Error("ensureKey wrote into a missing directory")
	}
	if _, _, err := ensureKey(filepath.Join(dir, "new.sec"), "bad name"); err == nil {
		t.Error("ensureKey accepted a key name with a space")
	}
	if _, err := os.Stat(filepath.Join(dir, "new.sec")); err == nil {
		t.Error("a refused key name left a file behind")
	}
}

// TestGeneratedKeyNix: Nix derives the same public key from the file.
func TestGeneratedKeyNix(t *testing.T) {
	env := testenv.RequireNix(t)
	file := filepath.Join(t.TempDir(), "cache.sec")
	key, _, err := ensureKey(file, "cache.example.org-1")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("nix", "key", "convert-secret-to-public")
	cmd.Env, cmd.Stdin = env, f
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix key convert-secret-to-public: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != key.Public().String() {
		t.Fatalf("Nix derives %s, we print %s", got, key.Public())
	}
}

func mustKey(t *testing.T) *nix.SecretKey {
	t.Helper()
	k, err := nix.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	return k
}
