package scan_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/scan/scantest"
	"github.com/nixs3q/nixs3q/uploader/local"
)

const storeDir = "/nix/store"

type fixture struct {
	dir     string
	cache   *local.Store
	w       *scantest.Writer
	trusted *nix.SecretKey
	other   *nix.SecretKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	c, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := nix.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := nix.GenerateKey("other-1")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, cache: c, w: &scantest.Writer{Cache: c, StoreDir: storeDir, Key: trusted}, trusted: trusted, other: other}
}

func (f *fixture) publish(t *testing.T, ps ...*scantest.Path) {
	t.Helper()
	for _, p := range ps {
		if _, err := f.w.Publish(context.Background(), p); err != nil {
			t.Fatalf("publish %s: %v", p.Base, err)
		}
	}
}

func (f *fixture) put(t *testing.T, key, data string) {
	t.Helper()
	if err := f.w.PutRaw(context.Background(), key, []byte(data)); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (f *fixture) scan(t *testing.T, cfg scan.Config) *scan.Graph {
	t.Helper()
	cfg.TrustedKeys = append(cfg.TrustedKeys, f.trusted.Public())
	g, err := scan.Scan(context.Background(), f.cache, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return g
}

func newPath(name string, refs ...*scantest.Path) *scantest.Path {
	return scantest.NewPath(storeDir, name, []byte("contents of "+name), refs...)
}

func mustLookup(t *testing.T, g *scan.Graph, p *scantest.Path) scan.ID {
	t.Helper()
	id, ok := g.Lookup(p.HashPart)
	if !ok {
		t.Fatalf("%s not in the graph", p.Base)
	}
	return id
}

func TestScanSeesEveryKindOfObject(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if err := f.w.PutCacheInfo(ctx); err != nil {
		t.Fatal(err)
	}
	c := newPath("c")
	b := newPath("b", c)
	a := newPath("a", b, c)
	a.SelfRef = true
	e := newPath("e") // never published: d's reference dangles
	d := newPath("d", e)
	bad := newPath("bad") // unparseable narinfo
	l := newPath("l", bad)
	noNar := newPath("nonar")
	short := newPath("short")
	unsigned := newPath("unsigned")
	otherKey := newPath("otherkey")
	forged := newPath("forged")
	f.publish(t, c, b, a, d, l, noNar, short, forged)
	f.put(t, bad.HashPart+".narinfo", "this is not a narinfo\n")

	ni, _, err := f.w.NarInfo(noNar)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cache.Delete(ctx, ni.URL); err != nil {
		t.Fatal(err)
	}
	ni, _, err = f.w.NarInfo(short)
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, ni.URL, "truncated")
	(&scantest.Writer{Cache: f.cache, StoreDir: storeDir}).Publish(ctx, unsigned)
	(&scantest.Writer{Cache: f.cache, StoreDir: storeDir, Key: f.other}).Publish(ctx, otherKey)
	// forged carries a signature by the trusted key's name over another
	// path's fingerprint.
	cni, _, _ := f.w.NarInfo(c)
	fni, _, _ := f.w.NarInfo(forged)
	fni.Sigs = cni.Sigs
	if err := f.w.PutNarInfo(ctx, fni); err != nil {
		t.Fatal(err)
	}
	// A narinfo at a key that does not match its store path.
	wrong := newPath("wrong")
	ani, _, _ := f.w.NarInfo(a)
	atext, err := ani.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, wrong.HashPart+".narinfo", string(atext))

	f.put(t, "nar/0000000000000000000000000000000000000000000000000000.nar", "orphan")
	f.put(t, a.HashPart+".ls", "{}")
	f.put(t, "log/"+a.HashPart+"-a.drv", "log")
	f.put(t, "realisations/sha256:x!out.doi", "{}")
	f.put(t, "build-trace-v2/x", "{}")
	f.put(t, scan.MetaPrefix+"roots/x", "root")
	f.put(t, "README", "hello")
	f.put(t, "not-a-hash.narinfo", "x")
	if err := os.WriteFile(filepath.Join(f.dir, "nar", ".tmp-abc.nar-12345"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}

	g := f.scan(t, scan.Config{Concurrency: 3})

	states := map[*scantest.Path]scan.State{
		a: scan.Valid, b: scan.Valid, c: scan.Valid, d: scan.Valid, e: scan.Missing,
		bad: scan.Invalid, l: scan.Valid, wrong: scan.Invalid,
	}
	for p, want := range states {
		if got := g.Node(mustLookup(t, g, p)).State; got != want {
			t.Errorf("%s: state %v, want %v", p.Base, got, want)
		}
	}
	if n := g.Node(mustLookup(t, g, wrong)); !strings.Contains(n.Err, "describes") {
		t.Errorf("narinfo at the wrong key: Err %q", n.Err)
	}
	na := g.Node(mustLookup(t, g, a))
	if !na.SelfRef || len(na.Refs) != 2 || na.Name != "a" || na.NarSize != uint64(len(a.NAR)) || !na.Listing {
		t.Errorf("node a = %+v", na)
	}
	if got := g.StorePath(mustLookup(t, g, a)); got != a.StorePath {
		t.Errorf("StorePath(a) = %q, want %q", got, a.StorePath)
	}
	if got := g.Node(mustLookup(t, g, e)).Name; got != "e" {
		t.Errorf("missing reference's name %q, want e (from the reference)", got)
	}

	narStatus := map[*scantest.Path]scan.NarStatus{a: scan.NarOK, noNar: scan.NarMissing, short: scan.NarSizeMismatch, bad: scan.NarNotApplicable}
	for p, want := range narStatus {
		if got := g.NarStatus(mustLookup(t, g, p)); got != want {
			t.Errorf("NarStatus(%s) = %v, want %v", p.Base, got, want)
		}
	}
	sigs := map[*scantest.Path]scan.SigStatus{a: scan.SigTrusted, unsigned: scan.SigNone, otherKey: scan.SigUntrusted, forged: scan.SigUntrusted}
	for p, want := range sigs {
		if got := g.Node(mustLookup(t, g, p)).Sig; got != want {
			t.Errorf("Sig(%s) = %v, want %v", p.Base, got, want)
		}
	}
	if got := g.Node(mustLookup(t, g, otherKey)).Signers; got != "other-1" {
		t.Errorf("Signers = %q", got)
	}

	var incomplete []string
	for _, id := range g.Incomplete() {
		incomplete = append(incomplete, g.Node(id).Name)
	}
	slices.Sort(incomplete)
	if !slices.Equal(incomplete, []string{"d", "l"}) {
		t.Errorf("Incomplete = %v, want [d l]", incomplete)
	}
	orphans := g.Orphans()
	if len(orphans) != 1 || !strings.HasPrefix(orphans[0].Key, "nar/0000") || orphans[0].Size != 6 {
		t.Errorf("Orphans = %+v", orphans)
	}
	if p := g.Pending(); len(p) != 1 || p[0].Key != "nar/abc.nar" {
		t.Errorf("Pending = %+v", p)
	}
	if ci := g.CacheInfo(); !ci.Present || ci.StoreDir != storeDir || ci.Priority != "40" {
		t.Errorf("CacheInfo = %+v", ci)
	}
	classes := map[scan.Class]int{}
	for _, o := range g.Others() {
		classes[o.Class]++
	}
	want := map[scan.Class]int{
		scan.ClassListing: 1, scan.ClassLog: 1, scan.ClassRealisation: 1, scan.ClassBuildTrace: 1,
		scan.ClassMeta: 1, scan.ClassOther: 2, scan.ClassCacheInfo: 1,
	}
	for cl, n := range want {
		if classes[cl] != n {
			t.Errorf("%d %v objects, want %d (all: %v)", classes[cl], cl, n, classes)
		}
	}
	st := g.Stats()
	if st.Valid != 10 || st.Invalid != 2 || st.Missing != 1 || st.Pending != 1 || st.ByClass[scan.ClassNarInfo].Objects != 12 {
		t.Errorf("Stats = %+v", st)
	}
	if st.Objects != st.ByClass[scan.ClassNarInfo].Objects+st.ByClass[scan.ClassNar].Objects+int64(len(g.Others())) {
		t.Errorf("Stats.Objects %d does not add up", st.Objects)
	}
}

func TestScanWithoutTrustedKeysChecksNoSignature(t *testing.T) {
	f := newFixture(t)
	f.publish(t, newPath("x"))
	g, err := scan.Scan(context.Background(), f.cache, scan.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Node(0).Sig; got != scan.SigUnchecked {
		t.Errorf("Sig = %v, want unchecked", got)
	}
	if g.CacheInfo().Present {
		t.Error("a cache without nix-cache-info reported one")
	}
}

func TestScanLargeNarInfoIsInvalid(t *testing.T) {
	f := newFixture(t)
	p := newPath("big")
	f.publish(t, p)
	g := f.scan(t, scan.Config{MaxNarInfoSize: 100})
	n := g.Node(mustLookup(t, g, p))
	if n.State != scan.Invalid || !strings.Contains(n.Err, "larger than 100 bytes") {
		t.Errorf("node = %+v", n)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg scan.Config
		ok  bool
	}{
		{scan.Config{}, true},
		{scan.Config{StoreDir: "relative"}, false},
		{scan.Config{StoreDir: "/"}, false},
		{scan.Config{Concurrency: -1}, false},
		{scan.Config{MaxNarInfoSize: -1}, false},
		{scan.Config{ProgressInterval: -1}, false},
		{scan.Config{TrustedKeys: []nix.PublicKey{{}}}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	h := newPath("x").HashPart
	for key, want := range map[string]scan.Class{
		h + ".narinfo":           scan.ClassNarInfo,
		h + ".ls":                scan.ClassListing,
		"nar/" + h + ".nar.zst":  scan.ClassNar,
		"nix-cache-info":         scan.ClassCacheInfo,
		"log/x.drv":              scan.ClassLog,
		"realisations/x":         scan.ClassRealisation,
		"build-trace-v2/x":       scan.ClassBuildTrace,
		scan.MetaPrefix + "x":    scan.ClassMeta,
		"sub/" + h + ".narinfo":  scan.ClassOther,
		"e" + h[1:] + ".narinfo": scan.ClassOther, // 'e' is not a nix32 digit
		"short.narinfo":          scan.ClassOther,
	} {
		if got := scan.Classify(key); got != want {
			t.Errorf("Classify(%q) = %v, want %v", key, got, want)
		}
	}
}
