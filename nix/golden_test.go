package nix

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

// runNix runs a Nix tool with testenv's environment and returns its stdout.
func runNix(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // not subject to umask
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// buildFixtureTree makes a tree with every kind of node and name that NAR
// serialisation has to get right.
func buildFixtureTree(t *testing.T) string {
	root := filepath.Join(t.TempDir(), "tree")
	big := make([]byte, 5<<20+3) // several copy buffers, not a multiple of 8
	rand.NewChaCha8([32]byte{7}).Read(big)
	writeFile(t, filepath.Join(root, "big.bin"), big, 0o644)
	writeFile(t, filepath.Join(root, "regular"), []byte("hello\n"), 0o644)
	writeFile(t, filepath.Join(root, "empty"), nil, 0o644)
	for _, n := range []int{1, 7, 8, 9, 16} {
		writeFile(t, filepath.Join(root, "pad", strings.Repeat("p", n)), bytes.Repeat([]byte{'x'}, n), 0o644)
	}
	writeFile(t, filepath.Join(root, "exec.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	writeFile(t, filepath.Join(root, "owner-exec-only"), []byte("x"), 0o700)
	writeFile(t, filepath.Join(root, "group-exec-only"), []byte("x"), 0o654)
	writeFile(t, filepath.Join(root, "read-only"), []byte("ro"), 0o444)
	writeFile(t, filepath.Join(root, "nested", "deeper", "deepest", "file"), []byte("deep"), 0o644)
	if err := os.MkdirAll(filepath.Join(root, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "nested", "empty-inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	symlink(t, "regular", filepath.Join(root, "rel-link"))
	symlink(t, "../regular", filepath.Join(root, "nested", "up-link"))
	symlink(t, "/etc/passwd", filepath.Join(root, "abs-link"))
	symlink(t, "does/not/exist", filepath.Join(root, "dangling"))
	symlink(t, "nested", filepath.Join(root, "dir-link"))
	symlink(t, strings.Repeat("t", 1000), filepath.Join(root, "long-target"))
	for _, name := range []string{
		"a", "a.b", "a-b", "A", "a0", "aa", "a b", "B", "_", "~", "-leading-dash",
		"with space", "ünïcödé", "日本語", "tab\there", "new\nline", `quote"'`, `back\slash`,
		strings.Repeat("L", 255), strings.Repeat("é", 127),
	} {
		writeFile(t, filepath.Join(root, "names", name), []byte(name), 0o644)
	}
	return root
}

func TestGoldenDumpPath(t *testing.T) {
	env := testenv.RequireNix(t)
	root := buildFixtureTree(t)
	for _, p := range []string{
		root,
		filepath.Join(root, "names"),
		filepath.Join(root, "big.bin"),
		filepath.Join(root, "empty"),
		filepath.Join(root, "exec.sh"),
		filepath.Join(root, "emptydir"),
		filepath.Join(root, "rel-link"),
		filepath.Join(root, "dangling"),
	} {
		name, _ := filepath.Rel(root, p)
		t.Run(name, func(t *testing.T) {
			want := runNix(t, env, "nix-store", "--dump", p)
			got := dumpBytes(t, p)
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Fatalf("DumpPath differs from nix-store --dump at byte %d (ours %d bytes, Nix %d)", i, len(got), len(want))
			}
			sum := sha256.Sum256(got)
			ours := EncodeBase32(sum[:])
			theirs := strings.TrimSpace(string(runNix(t, env, "nix-hash", "--type", "sha256", "--base32", p)))
			if ours != theirs {
				t.Errorf("NarHash %s, nix-hash says %s", ours, theirs)
			}
		})
	}
}

func TestGoldenBase32(t *testing.T) {
	env := testenv.RequireNix(t)
	r := rand.New(rand.NewPCG(3, 4))
	for algo, size := range map[string]int{"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64} {
		var hexes, ours []string
		for range 8 {
			b := make([]byte, size)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			hexes = append(hexes, hex.EncodeToString(b))
			ours = append(ours, EncodeBase32(b))
		}
		hexes = append(hexes, strings.Repeat("00", size), strings.Repeat("ff", size))
		ours = append(ours, EncodeBase32(make([]byte, size)), EncodeBase32(bytes.Repeat([]byte{0xff}, size)))

		viaNix := strings.Fields(string(runNix(t, env, "nix", append([]string{"hash", "to-base32", "--type", algo}, hexes...)...)))
		viaNixHash := strings.Fields(string(runNix(t, env, "nix-hash", append([]string{"--to-base32", "--type", algo}, hexes...)...)))
		sris := strings.Fields(string(runNix(t, env, "nix", append([]string{"hash", "to-sri", "--type", algo}, hexes...)...)))
		if len(viaNix) != len(hexes) || len(viaNixHash) != len(hexes) || len(sris) != len(hexes) {
			t.Fatalf("%s: Nix printed %d/%d/%d hashes for %d inputs", algo, len(viaNix), len(viaNixHash), len(sris), len(hexes))
		}
		for i := range hexes {
			if ours[i] != viaNix[i] || ours[i] != viaNixHash[i] {
				t.Errorf("%s %s: EncodeBase32 = %s, nix hash to-base32 = %s, nix-hash --to-base32 = %s", algo, hexes[i], ours[i], viaNix[i], viaNixHash[i])
			}
			h, err := ParseHash(sris[i])
			if err != nil || hex.EncodeToString(h.Digest) != hexes[i] || h.SRI() != sris[i] {
				t.Errorf("ParseHash(%s) = %v, %v; want digest %s", sris[i], h, err, hexes[i])
			}
			back, err := DecodeBase32(viaNix[i])
			if err != nil || hex.EncodeToString(back) != hexes[i] {
				t.Errorf("DecodeBase32(%s) = %x, %v; want %s", viaNix[i], back, err, hexes[i])
			}
		}
	}
}
