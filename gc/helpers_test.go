package gc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/local"
)

// bucket is a local-directory cache whose objects' times tests can set.
type bucket struct {
	t     *testing.T
	dir   string
	cache *local.Store
}

func newBucket(t *testing.T) *bucket {
	t.Helper()
	dir := t.TempDir()
	c, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := &bucket{t: t, dir: dir, cache: c}
	b.put("nix-cache-info", "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n", time.Now())
	return b
}

func (b *bucket) put(key, body string, mtime time.Time) {
	b.t.Helper()
	if err := b.cache.Put(context.Background(), key, strings.NewReader(body), uploader.PutOptions{Size: int64(len(body))}); err != nil {
		b.t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(b.dir, filepath.FromSlash(key)), mtime, mtime); err != nil {
		b.t.Fatal(err)
	}
}

// hashOf makes a deterministic 32-character hash part from a name.
func hashOf(name string) string {
	sum := sha256.Sum256([]byte(name))
	return nix.EncodeBase32(sum[:20])
}

func pathOf(name string) string { return "/nix/store/" + hashOf(name) + "-" + name }

// narKeyOf is the NAR key of a content.
func narKeyOf(content string) string {
	sum := sha256.Sum256([]byte(content))
	return "nar/" + nix.EncodeBase32(sum[:]) + ".nar"
}

// publish writes a path's NAR (named after content), listing and narinfo,
// all with time mtime.
func (b *bucket) publish(name, content string, mtime time.Time, refs ...string) {
	b.t.Helper()
	sum := sha256.Sum256([]byte(content))
	var rs []string
	for _, r := range refs {
		rs = append(rs, hashOf(r)+"-"+r)
	}
	slices.Sort(rs)
	ni := &nix.NarInfo{
		StorePath: pathOf(name), URL: narKeyOf(content), Compression: "none",
		NarHash: nix.NewSHA256(sum[:]), NarSize: uint64(len(content)), References: rs,
	}
	text, err := ni.MarshalText()
	if err != nil {
		b.t.Fatal(err)
	}
	b.put(narKeyOf(content), content, mtime)
	b.put(hashOf(name)+".ls", `{"version":1}`, mtime)
	b.put(hashOf(name)+".narinfo", string(text), mtime)
}

// keys lists every key of the bucket but nix-cache-info and gc's own
// lock and report.
func (b *bucket) keys() []string {
	b.t.Helper()
	var out []string
	err := b.cache.List(context.Background(), "", func(o uploader.Object) error {
		if o.Key != "nix-cache-info" && o.Key != LockKey && o.Key != ReportKey {
			out = append(out, o.Key)
		}
		return nil
	})
	if err != nil {
		b.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// objectsOf returns the keys published for names: narinfo, listing, NAR.
func objectsOf(contents map[string]string, names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, hashOf(n)+".narinfo", hashOf(n)+".ls", narKeyOf(contents[n]))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkConsistent fails when a narinfo references a missing narinfo or
// NAR.
func (b *bucket) checkConsistent(ctx context.Context) {
	b.t.Helper()
	g, err := scan.Scan(ctx, b.cache, scan.Config{}, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for id := range g.Len() {
		n := g.Node(scan.ID(id))
		if n.State != scan.Valid {
			continue
		}
		if st := g.NarStatus(scan.ID(id)); st != scan.NarOK {
			b.t.Errorf("%s: NAR %s: %v", n.Key(), n.URL, st)
		}
		for _, ref := range n.Refs {
			if g.Node(ref).State != scan.Valid {
				b.t.Errorf("%s references %s, which is %v", n.Key(), g.Node(ref).HashPart, g.Node(ref).State)
			}
		}
	}
}

func (b *bucket) read(key string) string {
	b.t.Helper()
	rc, err := b.cache.Get(context.Background(), key)
	if err != nil {
		b.t.Fatal(err)
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	return string(data)
}

func testConfig(cutoff time.Time) Config {
	return Config{Cutoff: cutoff, LockSettle: time.Millisecond, Concurrency: 4}
}

func diff(got, want []string) string {
	var b bytes.Buffer
	for _, k := range got {
		if !slices.Contains(want, k) {
			fmt.Fprintf(&b, "  unexpected %s\n", k)
		}
	}
	for _, k := range want {
		if !slices.Contains(got, k) {
			fmt.Fprintf(&b, "  missing %s\n", k)
		}
	}
	return b.String()
}
