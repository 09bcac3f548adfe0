package uploader

import (
	"context"
	"path"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/nix"
)

// signAs returns k's signature over the fingerprint of info.
func signAs(t *testing.T, storeDir string, k *nix.SecretKey, info *PathInfo) string {
	t.Helper()
	ni := nix.NarInfo{StorePath: info.Path, NarHash: info.NarHash, NarSize: info.NarSize}
	for _, r := range info.References {
		ni.References = append(ni.References, path.Base(r))
	}
	fp, err := ni.Fingerprint(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	return k.Sign(fp)
}

// Closure members validly signed by an upstream cache's key are neither
// looked up nor uploaded when that key is in SkipSignedBy; their referrers
// are still published, referring to them. A signature by a self-made key
// that bears the upstream key's name, or a genuine upstream signature copied
// from another path, does not count: those paths are uploaded.
func TestSkipSignedByUpstream(t *testing.T) {
	upstream, err := nix.GenerateKey("cache.nixos.org-1")
	if err != nil {
		t.Fatal(err)
	}
	spoof, err := nix.GenerateKey("cache.nixos.org-1")
	if err != nil {
		t.Fatal(err)
	}
	someone, err := nix.GenerateKey("someone-else-1")
	if err != nil {
		t.Fatal(err)
	}
	s := newFakeStore(t)
	libc := s.add(t, "libc", map[string]string{"f": strings.Repeat("c", 10_000)})
	s.info(libc).Sigs = []string{signAs(t, s.dir, upstream, s.info(libc))}
	mine := s.add(t, "mine", map[string]string{"f": "m"}, libc)
	other := s.add(t, "other", map[string]string{"f": "o"})
	s.info(other).Sigs = []string{signAs(t, s.dir, someone, s.info(other))}
	// A pushed root whose closure member is signed by a self-made key named
	// like the upstream one.
	spoofed := s.add(t, "spoofed", map[string]string{"f": "s"})
	s.info(spoofed).Sigs = []string{signAs(t, s.dir, spoof, s.info(spoofed))}
	// A real upstream signature, but of libc's fingerprint.
	copied := s.add(t, "copied", map[string]string{"f": "x"})
	s.info(copied).Sigs = []string{s.info(libc).Sigs[0]}
	root := s.add(t, "root", map[string]string{"f": "r"}, mine, other, spoofed, copied)
	s.info(root).Sigs = []string{signAs(t, s.dir, spoof, s.info(root))}

	cache := newFakeCache()
	cfg := testConfig(s.dir)
	cfg.SkipSignedBy = []string{upstream.Public().String()}
	u := newTestUploader(t, cfg, cache, s, nil, nil)
	res, err := u.Upload(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 5 || res.Skipped != 1 {
		t.Errorf("result %+v, want 5 uploaded (root, mine, other, spoofed, copied) and 1 skipped (libc)", res)
	}
	libcKey := keyOf(t, s.dir, libc)
	if _, ok := cache.object(libcKey); ok || cache.headsOf(libcKey) != 0 {
		t.Errorf("upstream path was looked up (%d) or uploaded", cache.headsOf(libcKey))
	}
	for _, p := range []string{other, spoofed, copied, root} {
		if _, ok := cache.object(keyOf(t, s.dir, p)); !ok {
			t.Errorf("%s, not validly signed by the upstream key, was not uploaded", p)
		}
	}
	b, ok := cache.object(keyOf(t, s.dir, mine))
	if !ok || !strings.Contains(string(b), strings.TrimPrefix(libc, s.dir+"/")) {
		t.Errorf("referrer of the upstream path not published with its reference:\n%s", b)
	}
}

func TestSkipSignedByValidated(t *testing.T) {
	for _, bad := range []string{
		"",
		"cache.nixos.org-1",
		"cache.nixos.org-1:abc",
		"two words",
		// 64 bytes: a secret key, not a public one.
		"k-1:" + strings.Repeat("A", 86) + "==",
	} {
		cfg := testConfig(t.TempDir())
		cfg.SkipSignedBy = []string{bad}
		if err := cfg.Validate(); err == nil {
			t.Errorf("SkipSignedBy %q accepted", bad)
		}
	}
	cfg := testConfig(t.TempDir())
	cfg.SkipSignedBy = []string{"cache.nixos.org-1"}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "cache.nixos.org-1:<base64 public key>") {
		t.Errorf("bare name: error %v does not show the wanted form", err)
	}
	cfg.SkipSignedBy = []string{"cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="}
	if err := cfg.Validate(); err != nil {
		t.Errorf("cache.nixos.org's public key refused: %v", err)
	}
}
