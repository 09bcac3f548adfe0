package nix

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

// pathInfo is the part of `nix path-info --json --sigs` (Nix 2.8) a narinfo
// is built from.
type pathInfo struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    uint64   `json:"narSize"`
	References []string `json:"references"`
	Deriver    string   `json:"deriver"`
	CA         string   `json:"ca"`
	Signatures []string `json:"signatures"`
}

// TestGoldenSignatures signs real store paths with `nix store sign` and checks
// that our fingerprint and signature are identical to Nix's, and that our
// verification agrees with it.
func TestGoldenSignatures(t *testing.T) {
	env := testenv.RequireNix(t)
	dir := t.TempDir()
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	// A fresh key name per run: the store paths are the same every run, and
	// may carry signatures by the keys of earlier runs.
	keyName := "nixs3q-golden-" + hex.EncodeToString(nonce) + "-1"
	sk, pk := filepath.Join(dir, "sk"), filepath.Join(dir, "pk")
	runNix(t, env, "nix-store", "--generate-binary-cache-key", keyName, sk, pk)
	secret, err := LoadSecretKeyFile(sk)
	if err != nil {
		t.Fatal(err)
	}
	pkText, err := os.ReadFile(pk)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(string(pkText))
	if err != nil {
		t.Fatal(err)
	}
	if secret.Name != keyName || pub.String() != secret.Public().String() {
		t.Fatalf("key %q with public %s, Nix wrote public key %s", secret.Name, secret.Public(), pub)
	}

	// A content-addressed file without references, and a built path that
	// refers to itself and to another path.
	fixture := filepath.Join(dir, "nixs3q-golden-fixture.txt")
	writeFile(t, fixture, []byte("golden signature fixture\n"), 0o644)
	added := strings.TrimSpace(string(runNix(t, env, "nix-store", "--add", fixture)))
	expr := `let dep = builtins.toFile "nixs3q-golden-dep" "dep"; in derivation {
		name = "nixs3q-golden-built"; system = builtins.currentSystem; builder = "/bin/sh";
		args = [ "-c" "/bin/echo $out ${dep} > $out" ]; }`
	built := strings.TrimSpace(string(runNix(t, env, "nix-build", "--no-out-link", "--expr", expr)))

	runNix(t, env, "nix", "store", "sign", "--key-file", sk, added, built)
	var infos []pathInfo
	if err := json.Unmarshal(runNix(t, env, "nix", "path-info", "--json", "--sigs", added, built), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("nix path-info gave %d paths, want 2", len(infos))
	}
	other, err := GenerateKey(keyName)
	if err != nil {
		t.Fatal(err)
	}

	signed := map[string]*NarInfo{}
	for _, info := range infos {
		t.Run(path.Base(info.Path), func(t *testing.T) {
			storeDir := path.Dir(info.Path)
			var nixSig string
			for _, s := range info.Signatures {
				if strings.HasPrefix(s, keyName+":") {
					nixSig = s
				}
			}
			if nixSig == "" {
				t.Fatalf("nix store sign left no signature by %s: %q", keyName, info.Signatures)
			}
			n := narInfoFromPathInfo(t, info)
			if info.Path == built && len(n.References) != 2 {
				t.Errorf("built path has references %q, want itself and its dependency", n.References)
			}
			fp, err := n.Fingerprint(storeDir)
			if err != nil {
				t.Fatal(err)
			}
			if !pub.Verify(fp, nixSig) {
				t.Errorf("Nix's signature %s does not verify over our fingerprint %q", nixSig, fp)
			}
			if other.Public().Verify(fp, nixSig) {
				t.Error("Nix's signature verifies under an unrelated key of the same name")
			}
			if err := n.Sign(storeDir, secret); err != nil {
				t.Fatal(err)
			}
			if len(n.Sigs) != 1 || n.Sigs[0] != nixSig {
				t.Errorf("our signature %q, Nix's %q", n.Sigs, nixSig)
			}

			// The NAR we would upload hashes to the NarHash Nix recorded.
			var nar bytes.Buffer
			if err := DumpPath(&nar, info.Path); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(nar.Bytes())
			if got := NewSHA256(sum[:]); !got.Equal(n.NarHash) || uint64(nar.Len()) != n.NarSize {
				t.Errorf("DumpPath: %s, %d bytes; Nix recorded %s, %d bytes", got, nar.Len(), n.NarHash, n.NarSize)
			}
			signed[info.Path] = n
		})
	}
	if len(signed) != 2 {
		t.FailNow()
	}
	t.Run("nix reads our cache", func(t *testing.T) {
		checkOurCacheVerifies(t, env, signed, pub, other.Public(), built)
	})
	t.Run("we read nix's narinfo", func(t *testing.T) {
		checkNixNarInfo(t, env, signed[built], keyName)
	})
}

// checkOurCacheVerifies writes a file:// cache from our NARs and narinfos and
// has `nix store verify` check NAR hashes, content addresses and signatures.
func checkOurCacheVerifies(t *testing.T, env []string, infos map[string]*NarInfo, trusted, untrusted PublicKey, inputAddressed string) {
	cache := t.TempDir()
	var storeDir string
	var paths []string
	for p, n := range infos {
		storeDir = path.Dir(p)
		paths = append(paths, p)
		if err := os.MkdirAll(filepath.Join(cache, "nar"), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(cache, n.URL))
		if err != nil {
			t.Fatal(err)
		}
		if err := DumpPath(f, p); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		text, err := n.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		sp, _ := ParseStorePath(storeDir, p)
		writeFile(t, filepath.Join(cache, sp.HashPart+".narinfo"), text, 0o644)
	}
	writeFile(t, filepath.Join(cache, "nix-cache-info"), []byte("StoreDir: "+storeDir+"\nWantMassQuery: 1\nPriority: 40\n"), 0o644)

	args := append([]string{"store", "verify", "--store", "file://" + cache, "--trusted-public-keys", trusted.String()}, paths...)
	runNix(t, env, "nix", args...)

	// The same check must fail when our key is not trusted, or it proves
	// nothing about our signatures.
	cmd := exec.CommandContext(t.Context(), "nix", "store", "verify", "--store", "file://"+cache,
		"--trusted-public-keys", untrusted.String(), inputAddressed)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("nix store verify trusted our signature under an unrelated key:\n%s", out)
	}
}

// checkNixNarInfo has Nix write a narinfo for a path we signed, parses it and
// checks that re-marshalling gives Nix's exact bytes.
func checkNixNarInfo(t *testing.T, env []string, ours *NarInfo, keyName string) {
	cache := t.TempDir()
	runNix(t, env, "nix", "copy", "--to", "file://"+cache, ours.StorePath)
	sp, err := ParseStorePath(path.Dir(ours.StorePath), ours.StorePath)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(cache, sp.HashPart+".narinfo"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := ParseNarInfo(text)
	if err != nil {
		t.Fatalf("ParseNarInfo(%q): %v", text, err)
	}
	again, err := n.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(text) {
		t.Errorf("re-marshalled Nix's narinfo:\n%s\nNix wrote:\n%s", again, text)
	}
	if n.StorePath != ours.StorePath || !n.NarHash.Equal(ours.NarHash) || n.NarSize != ours.NarSize ||
		!slices.Equal(n.References, ours.References) || n.Deriver != ours.Deriver || !slices.Contains(n.Sigs, ours.Sigs[0]) {
		t.Errorf("Nix's narinfo %+v does not match ours %+v", n, ours)
	}
	if n.Compression != "xz" || n.FileHash.IsZero() || n.FileSize == 0 {
		t.Errorf("Nix's narinfo lost file fields: %+v", n)
	}
	if _, err := os.Stat(filepath.Join(cache, n.URL)); err != nil {
		t.Errorf("narinfo URL %s: %v", n.URL, err)
	}
	if !strings.Contains(string(text), "Sig: "+keyName+":") {
		t.Errorf("Nix's narinfo has no signature by %s", keyName)
	}
}

func narInfoFromPathInfo(t *testing.T, info pathInfo) *NarInfo {
	t.Helper()
	storeDir := path.Dir(info.Path)
	h, err := ParseHash(info.NarHash)
	if err != nil {
		t.Fatal(err)
	}
	n := &NarInfo{
		StorePath:   info.Path,
		URL:         "nar/" + EncodeBase32(h.Digest) + ".nar",
		Compression: "none",
		NarHash:     h,
		NarSize:     info.NarSize,
		CA:          info.CA,
	}
	for _, r := range info.References {
		sp, err := ParseStorePath(storeDir, r)
		if err != nil {
			t.Fatal(err)
		}
		n.References = append(n.References, sp.Base())
	}
	if info.Deriver != "" {
		sp, err := ParseStorePath(storeDir, info.Deriver)
		if err != nil {
			t.Fatal(err)
		}
		n.Deriver = sp.Base()
	}
	return n
}
