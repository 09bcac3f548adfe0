package nix

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

func TestKeyRoundTrip(t *testing.T) {
	k, err := GenerateKey("cache.example.org-1")
	if err != nil {
		t.Fatal(err)
	}
	s := k.String()
	if !strings.HasPrefix(s, "cache.example.org-1:") {
		t.Fatalf("String() = %q", s)
	}
	back, err := ParseSecretKey("  " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if back.String() != s || back.Name != k.Name {
		t.Errorf("parsed key differs: %q vs %q", back.String(), s)
	}
	pub := k.Public()
	pubBack, err := ParsePublicKey(pub.String() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if pubBack.String() != pub.String() {
		t.Errorf("public key round trip: %q vs %q", pubBack.String(), pub.String())
	}
	const fp = "1;/nix/store/" + refB + ";sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h;120;"
	sig := back.Sign(fp)
	if sig != k.Sign(fp) {
		t.Error("signatures by the same key differ (ed25519 is deterministic)")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "cache.example.org-1:"))
	if err != nil || len(raw) != ed25519.SignatureSize {
		t.Errorf("signature %q is not name:base64 of 64 bytes", sig)
	}
	if !pubBack.Verify(fp, sig) {
		t.Error("signature does not verify")
	}
	if pubBack.Verify(fp+"x", sig) {
		t.Error("signature verifies for another fingerprint")
	}
	renamed := PublicKey{Name: "other", key: pubBack.key}
	if renamed.Verify(fp, sig) {
		t.Error("signature verifies under another key name")
	}
	if !renamed.Verify(fp, "other:"+strings.TrimPrefix(sig, "cache.example.org-1:")) {
		t.Error("renamed signature does not verify under the renamed key")
	}
	other, _ := GenerateKey("cache.example.org-1")
	if other.Public().Verify(fp, sig) {
		t.Error("signature verifies under a different key of the same name")
	}
	for _, bad := range []string{"", "cache.example.org-1", "cache.example.org-1:", "cache.example.org-1:!!!", "cache.example.org-1:c2ln"} {
		if pub.Verify(fp, bad) {
			t.Errorf("Verify(%q) = true", bad)
		}
	}
	if (PublicKey{}).Verify(fp, sig) {
		t.Error("zero PublicKey verifies")
	}
}

func TestParseSecretKeyErrors(t *testing.T) {
	k, err := GenerateKey("k")
	if err != nil {
		t.Fatal(err)
	}
	secretB64 := strings.TrimPrefix(k.String(), "k:")
	pubStr := k.Public().String()
	raw, _ := base64.StdEncoding.DecodeString(secretB64)
	mismatched := append([]byte(nil), raw...)
	mismatched[40] ^= 1
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "missing ':'"},
		{"no colon", secretB64, "missing ':'"},
		{"empty name", ":" + secretB64, "empty key name"},
		{"bad base64", "k:not*base64", "not valid base64"},
		{"public key", pubStr, "a public key"},
		{"short", "k:" + base64.StdEncoding.EncodeToString(raw[:40]), "40 bytes, want 64"},
		{"mismatched halves", "k:" + base64.StdEncoding.EncodeToString(mismatched), "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSecretKey(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseSecretKey error = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secretB64[:16]) {
				t.Errorf("error %q leaks key material", err)
			}
		})
	}
	for _, tc := range []struct{ name, in, want string }{
		{"secret key", k.String(), "a secret key"},
		{"no colon", "abc", "missing ':'"},
		{"short", "k:c2ln", "3 bytes, want 32"},
	} {
		if _, err := ParsePublicKey(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePublicKey(%s) error = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	for _, name := range []string{"", "a:b", "a b"} {
		if _, err := GenerateKey(name); err == nil {
			t.Errorf("GenerateKey(%q) succeeded", name)
		}
	}
}

func TestLoadSecretKeyFile(t *testing.T) {
	dir := t.TempDir()
	k, err := GenerateKey("file-key")
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte(k.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadSecretKeyFile(good)
	if err != nil || loaded.String() != k.String() {
		t.Fatalf("LoadSecretKeyFile = %v, %v", loaded, err)
	}

	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte(k.Public().String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadSecretKeyFile(bad)
	if err == nil || !strings.HasPrefix(err.Error(), "nix: secret key file "+bad+": malformed: ") {
		t.Errorf("malformed file error = %v", err)
	}
	missing := filepath.Join(dir, "missing")
	_, err = LoadSecretKeyFile(missing)
	if err == nil || !strings.HasPrefix(err.Error(), "nix: secret key file "+missing+": open ") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file error = %v", err)
	}
}

// A key file that group or others may read, or that another user owns, is
// reported as exposed; a private one owned by the reader or by root is not.
func TestCheckSecretKeyFile(t *testing.T) {
	k, err := GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "key.sec")
	if err := os.WriteFile(file, []byte(k.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	me := os.Getuid()
	if err := CheckSecretKeyFile(file, me); err != nil {
		t.Errorf("private key file: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o602} {
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
		err := CheckSecretKeyFile(file, me)
		if !errors.Is(err, ErrKeyFileExposed) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: error %v, want ErrKeyFileExposed with the fix", mode, err)
		}
		if err != nil && strings.Contains(err.Error(), k.String()[len("test-1:"):]) {
			t.Error("error quotes the key")
		}
	}
	if err := os.Chmod(file, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := CheckSecretKeyFile(file, me); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	if err := CheckSecretKeyFile(filepath.Join(dir, "nope"), me); err == nil || errors.Is(err, ErrKeyFileExposed) {
		t.Errorf("missing file: %v", err)
	}
	testenv.RequireRoot(t)
	// Owned by root: fine for any reader.
	if err := CheckSecretKeyFile(file, 4242); err != nil {
		t.Errorf("root-owned 0400 key file for uid 4242: %v", err)
	}
	if err := os.Chown(file, 4243, 4243); err != nil {
		t.Fatal(err)
	}
	if err := CheckSecretKeyFile(file, 4243); err != nil {
		t.Errorf("key file owned by its reader: %v", err)
	}
	err = CheckSecretKeyFile(file, 4242)
	if !errors.Is(err, ErrKeyFileExposed) || !strings.Contains(err.Error(), "uid 4243") {
		t.Errorf("key file owned by another user: %v", err)
	}
}
