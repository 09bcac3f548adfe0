package uploader

import (
	"bytes"
	"crypto/sha256"
	"io"
	"path"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/nix"
)

func testConfig(storeDir string) Config {
	cfg := DefaultConfig()
	cfg.StoreDir = storeDir
	return cfg
}

func newTestUploader(t testing.TB, cfg Config, cache Cache, src PathInfoSource, presence Presence, key *nix.SecretKey) *Uploader {
	t.Helper()
	u, err := New(cfg, cache, src, presence, key, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return u
}

func decompress(t testing.TB, compression string, data []byte) []byte {
	t.Helper()
	var r io.Reader
	switch compression {
	case "none":
		return data
	case "zstd":
		d, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r = d
	case "xz":
		x, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		r = x
	default:
		t.Fatalf("unknown compression %q", compression)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompress %s: %v", compression, err)
	}
	return out
}

// checkCache verifies, as a Nix client would, everything the Puts of c
// published, in commit order: every narinfo parses, its NAR object exists
// and was committed earlier, decompresses to a NAR with the narinfo's NarHash
// and NarSize, FileHash and FileSize describe the object, and the narinfo of
// every reference was committed earlier or existed beforehand (in pre). It
// returns the parsed narinfos by key.
func checkCache(t testing.TB, c *fakeCache, storeDir string, pre map[string]bool) map[string]*nix.NarInfo {
	t.Helper()
	published := make(map[string]bool)
	for k := range pre {
		published[k] = true
	}
	out := make(map[string]*nix.NarInfo)
	for i, key := range c.putLog() {
		if !strings.HasSuffix(key, ".narinfo") {
			published[key] = true
			continue
		}
		data, _ := c.object(key)
		ni, err := nix.ParseNarInfo(data)
		if err != nil {
			t.Fatalf("put #%d %s: %v\n%s", i, key, err, data)
		}
		if got := c.typeOf(key); got != narinfoContentType {
			t.Errorf("%s: content type %q", key, got)
		}
		self := path.Base(ni.StorePath)
		if want := self[:32] + ".narinfo"; key != want {
			t.Errorf("narinfo of %s stored at %s", ni.StorePath, key)
		}
		for _, ref := range ni.References {
			if ref == self {
				continue
			}
			if !published[ref[:32]+".narinfo"] {
				t.Errorf("narinfo %s (put #%d) published before its reference %s", key, i, ref)
			}
		}
		if !published[ni.URL] {
			t.Errorf("narinfo %s published before its NAR %s", key, ni.URL)
		}
		obj, ok := c.object(ni.URL)
		if !ok {
			t.Fatalf("%s: NAR %s missing", key, ni.URL)
		}
		if got := c.typeOf(ni.URL); got != narContentType {
			t.Errorf("%s: content type %q", ni.URL, got)
		}
		fileSum := sha256.Sum256(obj)
		if !ni.FileHash.Equal(nix.NewSHA256(fileSum[:])) || ni.FileSize != uint64(len(obj)) {
			t.Errorf("%s: FileHash/FileSize %s/%d, object is %x/%d", key, ni.FileHash, ni.FileSize, fileSum, len(obj))
		}
		nar := decompress(t, ni.Compression, obj)
		narSum := sha256.Sum256(nar)
		if !ni.NarHash.Equal(nix.NewSHA256(narSum[:])) || ni.NarSize != uint64(len(nar)) {
			t.Errorf("%s: NAR does not match NarHash/NarSize", key)
		}
		if _, err := ni.Fingerprint(storeDir); err != nil {
			t.Errorf("%s: %v", key, err)
		}
		published[key] = true
		out[key] = ni
	}
	return out
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
