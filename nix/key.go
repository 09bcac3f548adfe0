package nix

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// SecretKey is an Ed25519 signing key with the name that Nix puts in front
// of its signatures. Its file form, as `nix-store --generate-binary-cache-key`
// writes it, is "<name>:<base64 of the 64-byte seed||public key>". The zero
// SecretKey cannot sign: make one with GenerateKey, ParseSecretKey or
// LoadSecretKeyFile. A SecretKey is safe for concurrent use.
type SecretKey struct {
	Name string
	key  ed25519.PrivateKey
}

// PublicKey is an Ed25519 verification key with its name, in the form
// "<name>:<base64 of 32 bytes>" that trusted-public-keys lists.
type PublicKey struct {
	Name string
	key  ed25519.PublicKey
}

// GenerateKey makes a new random key named name. The name must be non-empty
// and contain no ':' or white space.
func GenerateKey(name string) (*SecretKey, error) {
	if err := checkKeyName(name); err != nil {
		return nil, fmt.Errorf("nix: generate key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("nix: generate key: %w", err)
	}
	return &SecretKey{Name: name, key: priv}, nil
}

func checkKeyName(name string) error {
	if name == "" {
		return errors.New("empty key name")
	}
	if strings.ContainsAny(name, ": \t\r\n") {
		return fmt.Errorf("key name %q contains ':' or white space", name)
	}
	return nil
}

// splitKey splits "<name>:<base64>" and decodes the key bytes. Errors never
// quote the key material.
func splitKey(s string) (string, []byte, error) {
	name, b64, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return "", nil, errors.New("missing ':' between key name and key")
	}
	if err := checkKeyName(name); err != nil {
		return "", nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", nil, fmt.Errorf("key of %q is not valid base64", name)
	}
	return name, raw, nil
}

// ParseSecretKey parses a secret key in Nix's file form, ignoring white
// space around it. It rejects a missing colon, an empty name, bad base64, a
// wrong length (naming the likely mistake when a public key is given), and a
// key whose public half does not match its seed.
func ParseSecretKey(s string) (*SecretKey, error) {
	k, err := parseSecretKey(s)
	if err != nil {
		return nil, fmt.Errorf("nix: malformed secret key: %w", err)
	}
	return k, nil
}

func parseSecretKey(s string) (*SecretKey, error) {
	name, raw, err := splitKey(s)
	if err != nil {
		return nil, err
	}
	switch len(raw) {
	case ed25519.PrivateKeySize:
	case ed25519.PublicKeySize:
		return nil, fmt.Errorf("key %q is %d bytes, a public key; a secret key has %d", name, len(raw), ed25519.PrivateKeySize)
	default:
		return nil, fmt.Errorf("key %q is %d bytes, want %d", name, len(raw), ed25519.PrivateKeySize)
	}
	priv := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
	if !bytes.Equal(priv[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
		return nil, fmt.Errorf("key %q: public half does not match the seed", name)
	}
	return &SecretKey{Name: name, key: priv}, nil
}

// LoadSecretKeyFile reads and parses a secret key file. Its errors name the
// file and the reason, never the key material.
func LoadSecretKeyFile(path string) (*SecretKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nix: secret key file %s: %w", path, err)
	}
	k, err := parseSecretKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("nix: secret key file %s: malformed: %w", path, err)
	}
	return k, nil
}

// ErrKeyFileExposed is wrapped by CheckSecretKeyFile's errors when a secret
// key file is open to users other than root and the key's owner.
var ErrKeyFileExposed = errors.New("secret key file is exposed to other users")

// CheckSecretKeyFile checks that the secret key file at path (symbolic links
// followed, as LoadSecretKeyFile does) is kept private: no permission bits
// for group or others, and owned by root or by uid. An exposed file gives an
// error wrapping ErrKeyFileExposed that names the file, its mode and owner,
// and the fix; a file that cannot be examined gives the stat error. It reads
// only metadata.
func CheckSecretKeyFile(path string, uid int) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("nix: secret key file %s: %w", path, err)
	}
	var problems []string
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		problems = append(problems, fmt.Sprintf("mode %04o gives group or others access (chmod 600 it)", perm))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != uid {
		problems = append(problems, fmt.Sprintf("owned by uid %d, neither root nor uid %d that reads it (chown it)", st.Uid, uid))
	}
	if len(problems) > 0 {
		return fmt.Errorf("nix: secret key file %s: %w: %s", path, ErrKeyFileExposed, strings.Join(problems, "; "))
	}
	return nil
}

// String returns the key in its file form (without a trailing newline).
func (k *SecretKey) String() string {
	return k.Name + ":" + base64.StdEncoding.EncodeToString(k.key)
}

// Sign signs fingerprint and returns "<name>:<base64 signature>", the form
// of a narinfo Sig line. Ed25519 is deterministic, so this equals what Nix
// produces with the same key.
func (k *SecretKey) Sign(fingerprint string) string {
	sig := ed25519.Sign(k.key, []byte(fingerprint))
	return k.Name + ":" + base64.StdEncoding.EncodeToString(sig)
}

// Public returns the matching public key.
func (k *SecretKey) Public() PublicKey {
	return PublicKey{Name: k.Name, key: k.key.Public().(ed25519.PublicKey)}
}

// ParsePublicKey parses "<name>:<base64 of 32 bytes>", ignoring white space
// around it.
func ParsePublicKey(s string) (PublicKey, error) {
	name, raw, err := splitKey(s)
	if err == nil && len(raw) != ed25519.PublicKeySize {
		if len(raw) == ed25519.PrivateKeySize {
			err = fmt.Errorf("key %q is %d bytes, a secret key; a public key has %d", name, len(raw), ed25519.PublicKeySize)
		} else {
			err = fmt.Errorf("key %q is %d bytes, want %d", name, len(raw), ed25519.PublicKeySize)
		}
	}
	if err != nil {
		return PublicKey{}, fmt.Errorf("nix: malformed public key: %w", err)
	}
	return PublicKey{Name: name, key: ed25519.PublicKey(raw)}, nil
}

// String returns "<name>:<base64>", the form trusted-public-keys takes.
func (p PublicKey) String() string {
	return p.Name + ":" + base64.StdEncoding.EncodeToString(p.key)
}

// Verify reports whether sig ("<name>:<base64>") is a valid signature of
// fingerprint by p. It is false for signatures under another key name and
// for malformed signatures.
func (p PublicKey) Verify(fingerprint, sig string) bool {
	name, b64, ok := strings.Cut(sig, ":")
	if !ok || name != p.Name || len(p.key) != ed25519.PublicKeySize {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(p.key, []byte(fingerprint), raw)
}
