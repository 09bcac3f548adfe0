package verify_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/scan/scantest"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/local"
	"github.com/nixs3q/nixs3q/verify"
)

const storeDir = "/nix/store"

type fixture struct {
	dir     string
	cache   *local.Store
	w       *scantest.Writer
	key     *nix.SecretKey
	other   *nix.SecretKey
	paths   map[string]*scantest.Path // by store path
	localMu sync.Mutex
	local   map[string]bool // store paths the fake local store has
}

func newFixture(t *testing.T, compression string) *fixture {
	t.Helper()
	dir := t.TempDir()
	c, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := nix.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := nix.GenerateKey("other-1")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		dir: dir, cache: c, key: key, other: other,
		w:     &scantest.Writer{Cache: c, StoreDir: storeDir, Key: key, Compression: compression},
		paths: map[string]*scantest.Path{}, local: map[string]bool{},
	}
	if err := f.w.PutCacheInfo(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) path(name string, refs ...*scantest.Path) *scantest.Path {
	p := scantest.NewPath(storeDir, name, []byte("contents of "+name+strings.Repeat(" padding", 40)), refs...)
	f.paths[p.StorePath] = p
	return p
}

func (f *fixture) publish(t *testing.T, ps ...*scantest.Path) {
	t.Helper()
	for _, p := range ps {
		if _, err := f.w.Publish(context.Background(), p); err != nil {
			t.Fatalf("publish %s: %v", p.Base, err)
		}
	}
}

func (f *fixture) narKey(t *testing.T, p *scantest.Path) string {
	t.Helper()
	ni, _, err := f.w.NarInfo(p)
	if err != nil {
		t.Fatal(err)
	}
	return ni.URL
}

// age sets the modification time of the file at key.
func (f *fixture) age(t *testing.T, key string, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	if err := os.Chtimes(filepath.Join(f.dir, filepath.FromSlash(key)), when, when); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) cfg() verify.Config {
	return verify.Config{StoreDir: storeDir, TrustedKeys: []nix.PublicKey{f.key.Public()}, Concurrency: 8}
}

func (f *fixture) check(t *testing.T, cache uploader.Cache, cfg verify.Config) (*verify.Report, *scan.Graph) {
	t.Helper()
	r, g, err := verify.Check(context.Background(), cache, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return r, g
}

// problems renders a report's problems as "kind key" lines, sorted.
func problems(r *verify.Report) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, string(p.Kind)+" "+p.Key)
	}
	slices.Sort(out)
	return out
}

// Valid implements verify.LocalStore.
func (f *fixture) Valid(ctx context.Context, paths []string) (map[string]bool, error) {
	f.localMu.Lock()
	defer f.localMu.Unlock()
	out := map[string]bool{}
	for _, p := range paths {
		out[p] = f.local[p]
	}
	return out, nil
}

// Find implements verify.LocalStore.
func (f *fixture) Find(ctx context.Context, hash string) (string, error) {
	f.localMu.Lock()
	defer f.localMu.Unlock()
	for p := range f.local {
		if strings.HasPrefix(filepath.Base(p), hash+"-") {
			return p, nil
		}
	}
	return "", nil
}

// publisher is a verify.Publisher that publishes the fixture's synthetic
// paths, references first, skipping present references as the uploader
// does.
type publisher struct {
	f     *fixture
	t     *testing.T
	calls [][]string
}

func (p *publisher) Republish(ctx context.Context, roots []string, done func(string, uploader.Result, error)) {
	p.calls = append(p.calls, slices.Clone(roots))
	for _, r := range roots {
		sp := p.f.paths[r]
		var res uploader.Result
		var err error
		var visit func(x *scantest.Path, force bool)
		visit = func(x *scantest.Path, force bool) {
			if err != nil {
				return
			}
			if !force {
				ok, herr := p.f.cache.Has(ctx, x.HashPart+".narinfo")
				if herr != nil || ok {
					err = herr
					return
				}
			}
			for _, ref := range x.Refs {
				visit(ref, slices.Contains(roots, ref.StorePath))
			}
			if _, perr := p.f.w.Publish(ctx, x); perr != nil {
				err = perr
				return
			}
			res.Uploaded++
		}
		visit(sp, true)
		done(r, res, err)
	}
}

func (p *publisher) EnsureCacheInfo(ctx context.Context) error { return p.f.w.PutCacheInfo(ctx) }
