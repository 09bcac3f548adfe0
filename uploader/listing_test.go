package uploader

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/nix"
)

// lsKey returns the listing key of a full store path.
func lsKey(t testing.TB, storeDir, p string) string {
	t.Helper()
	return strings.TrimSuffix(keyOf(t, storeDir, p), ".narinfo") + ".ls"
}

type lsNode struct {
	Type       string            `json:"type"`
	Size       *uint64           `json:"size"`
	Executable bool              `json:"executable"`
	NarOffset  *uint64           `json:"narOffset"`
	Entries    map[string]lsNode `json:"entries"`
	Target     string            `json:"target"`
}

// checkLsAgainstNAR checks every regular file of a parsed listing against
// the NAR it describes and the tree on disk.
func checkLsAgainstNAR(t *testing.T, nar []byte, n lsNode, path string) {
	t.Helper()
	switch n.Type {
	case "regular":
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if n.Size == nil || n.NarOffset == nil {
			t.Fatalf("%s: listing lacks size or narOffset", path)
		}
		end := *n.NarOffset + *n.Size
		if end > uint64(len(nar)) || string(nar[*n.NarOffset:end]) != string(want) {
			t.Errorf("%s: NAR bytes at narOffset %d (size %d) are not the file's contents", path, *n.NarOffset, *n.Size)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if n.Executable != (fi.Mode()&0o100 != 0) {
			t.Errorf("%s: executable %v, mode %v", path, n.Executable, fi.Mode())
		}
	case "directory":
		for name, e := range n.Entries {
			checkLsAgainstNAR(t, nar, e, filepath.Join(path, name))
		}
	case "symlink":
		if target, err := os.Readlink(path); err != nil || target != n.Target {
			t.Errorf("%s: target %q, readlink %q (%v)", path, n.Target, target, err)
		}
	default:
		t.Errorf("%s: node type %q", path, n.Type)
	}
}

func TestUploadWriteNarListing(t *testing.T) {
	for _, compression := range []string{"zstd", "none"} {
		t.Run(compression, func(t *testing.T) {
			s := newFakeStore(t)
			p := diamond(t, s)
			if err := os.Symlink("../d.txt", filepath.Join(p["d"], "link")); err != nil {
				t.Fatal(err)
			}
			s.info(p["d"]).NarHash, s.info(p["d"]).NarSize = dumpHash(t, p["d"])
			c := newFakeCache()
			cfg := testConfig(s.dir)
			cfg.Compression = compression
			cfg.WriteNarListing = true
			u := newTestUploader(t, cfg, c, s, nil, nil)

			if _, err := u.Upload(context.Background(), p["a"]); err != nil {
				t.Fatal(err)
			}
			infos := checkCache(t, c, s.dir, nil)
			puts := c.putLog()
			for _, x := range []string{"a", "b", "c", "d", "e"} {
				niKey, ls := keyOf(t, s.dir, p[x]), lsKey(t, s.dir, p[x])
				ni := infos[niKey]
				if ni == nil {
					t.Fatalf("%s not published", p[x])
				}
				iNAR, iLs, iNi := indexOf(puts, ni.URL), indexOf(puts, ls), indexOf(puts, niKey)
				if iLs < 0 || iLs < iNAR || iLs > iNi {
					t.Errorf("%s: puts NAR #%d, listing #%d, narinfo #%d; want NAR < listing < narinfo", x, iNAR, iLs, iNi)
				}
				if n := c.attemptsOf(ls); n != 1 {
					t.Errorf("%s put %d times", ls, n)
				}
				if got := c.typeOf(ls); got != "application/json" {
					t.Errorf("%s: content type %q", ls, got)
				}
				data, _ := c.object(ls)
				var doc struct {
					Version int    `json:"version"`
					Root    lsNode `json:"root"`
				}
				if err := json.Unmarshal(data, &doc); err != nil || doc.Version != 1 {
					t.Fatalf("%s: version %d, %v\n%s", ls, doc.Version, err, data)
				}
				obj, _ := c.object(ni.URL)
				checkLsAgainstNAR(t, decompress(t, compression, obj), doc.Root, p[x])

				var sink strings.Builder
				want, err := nix.DumpPathListing(&sink, p[x])
				if err != nil {
					t.Fatal(err)
				}
				if js, _ := want.MarshalJSON(); string(js) != string(data) {
					t.Errorf("%s:\n got %s\nwant %s", ls, data, js)
				}
			}
		})
	}
}

func TestUploadNoNarListingByDefault(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	u := newTestUploader(t, testConfig(s.dir), c, s, nil, nil)
	if _, err := u.Upload(context.Background(), p["a"]); err != nil {
		t.Fatal(err)
	}
	if len(checkCache(t, c, s.dir, nil)) != 5 {
		t.Fatalf("closure not published")
	}
	for _, key := range c.putLog() {
		if strings.HasSuffix(key, ".ls") {
			t.Errorf("listing %s written without WriteNarListing", key)
		}
	}
}

func TestUploadNarListingFailure(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	denied := errors.New("access denied")
	c.failPut[lsKey(t, s.dir, p["d"])] = denied
	cfg := testConfig(s.dir)
	cfg.WriteNarListing = true
	u := newTestUploader(t, cfg, c, s, nil, nil)

	_, err := u.Upload(context.Background(), p["a"])
	if !errors.Is(err, denied) || !strings.Contains(err.Error(), lsKey(t, s.dir, p["d"])) {
		t.Fatalf("error %v, want the failed listing put", err)
	}
	for _, x := range []string{"a", "b", "c", "d"} {
		if _, ok := c.object(keyOf(t, s.dir, p[x])); ok {
			t.Errorf("narinfo of %s published although the listing of d failed", x)
		}
	}
	if _, ok := c.object(keyOf(t, s.dir, p["e"])); !ok {
		t.Errorf("narinfo of e, below the failure, not published")
	}
	checkCache(t, c, s.dir, nil)
}

func TestUploadNarListingHashMismatch(t *testing.T) {
	s := newFakeStore(t)
	x := s.add(t, "x", map[string]string{"data": "hello world"})
	if err := os.WriteFile(filepath.Join(x, "data"), []byte("HELLO WORLD"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newFakeCache()
	cfg := testConfig(s.dir)
	cfg.WriteNarListing = true
	u := newTestUploader(t, cfg, c, s, nil, nil)
	if _, err := u.Upload(context.Background(), x); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("error %v, want ErrHashMismatch", err)
	}
	if n := c.attemptsOf(lsKey(t, s.dir, x)); n != 0 {
		t.Errorf("listing of a mismatching NAR put %d times", n)
	}
}
