//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileCache: the same flow with a file:// cache, uncompressed NARs, and
// NAR listings (write-nar-listing=1) beside every narinfo.
func TestFileCache(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	dir := filepath.Join(t.TempDir(), "cache")
	cache := dirCache{dir: dir}
	key := n.generateKey(t, ctx, "e2e-file-1")
	opts := newDaemonOpts(t, "file://"+dir+"?write-nar-listing=1", key.secretFile, n.env)
	opts.flags = []string{"--compression", "none"}
	d := startDaemon(t, opts)

	res := buildAndPublish(t, ctx, n, d, cache, key, "all")
	for p, ni := range res.cache.narinfos {
		hashPart := strings.SplitN(filepath.Base(ni.StorePath), "-", 2)[0]
		var ls struct {
			Version int `json:"version"`
			Root    struct {
				Type string `json:"type"`
			} `json:"root"`
		}
		b, err := os.ReadFile(filepath.Join(dir, hashPart+".ls"))
		if err != nil || json.Unmarshal(b, &ls) != nil || ls.Version != 1 || ls.Root.Type == "" {
			t.Errorf("%s: listing %s.ls missing or malformed (%v): %s", p, hashPart, err, b)
		}
		if ni.Compression != "none" || !strings.HasSuffix(ni.URL, ".nar") || !ni.FileHash.Equal(ni.NarHash) {
			t.Errorf("%s: Compression %q URL %q: want an uncompressed .nar whose FileHash is its NarHash", p, ni.Compression, ni.URL)
		}
	}
	for _, k := range res.cache.keys {
		if strings.Contains(filepath.Base(k), "tmp") {
			t.Errorf("temporary file left in the cache: %s", k)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "nix-cache-info")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("nix-cache-info: %v", err)
	}
	substituteAndCompare(t, ctx, n, cache, key, res)
}
