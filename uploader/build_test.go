package uploader

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/nix"
)

// realisingStore is a fakeStore that also answers Realisations.
type realisingStore struct {
	*fakeStore
	reals   map[string][]nix.Realisation // by drv path
	queries *int
}

func (s realisingStore) Realisations(ctx context.Context, drv string) ([]nix.Realisation, error) {
	*s.queries++
	return s.reals[drv], nil
}

// encodingCache is a fakeCache that serves Content-Encoding, like S3, and
// records it.
type encodingCache struct {
	*fakeCache
	encodings map[string]string
}

func (c encodingCache) ServesContentEncoding() bool { return true }

func (c encodingCache) Put(ctx context.Context, key string, body io.Reader, opt PutOptions) error {
	c.mu.Lock()
	c.encodings[key] = opt.ContentEncoding
	c.mu.Unlock()
	return c.fakeCache.Put(ctx, key, body, opt)
}

// addDrv makes a .drv file in the fake store, of a content-addressed
// derivation, and, when log is not nil, its build log in logDir
// (bzip2-compressed when bz2 is set).
func addDrv(t *testing.T, s *fakeStore, logDir, name string, log []byte, bz2 bool) string {
	t.Helper()
	drv := filepath.Join(s.dir, hashPart(name+".drv")+"-"+name+".drv")
	if err := os.WriteFile(drv, []byte(`Derive([("out","","r:sha256","")],[],[],"x","/bin/sh",[],[])`), 0o444); err != nil {
		t.Fatal(err)
	}
	if log != nil {
		base := filepath.Base(drv)
		file := filepath.Join(logDir, "drvs", base[:2], base[2:])
		if bz2 {
			file += ".bz2"
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, log, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return drv
}

func TestPublishBuildLog(t *testing.T) {
	bz2, err := os.ReadFile("testdata/build-log.bz2")
	if err != nil {
		t.Fatal(err)
	}
	const text = "building ca 1\nhello from the builder\n"
	for _, tc := range []struct {
		name    string
		log     []byte
		bz2     bool
		encoded bool
	}{
		{"plain log, local directory", []byte(text), false, false},
		{"bzip2 log, local directory", bz2, true, false},
		{"plain log, S3", []byte(text), false, true},
		{"bzip2 log, S3", bz2, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeStore(t)
			logDir := t.TempDir()
			drv := addDrv(t, s, logDir, "hello", tc.log, tc.bz2)
			fc := newFakeCache()
			var cache Cache = fc
			ec := encodingCache{fc, map[string]string{}}
			if tc.encoded {
				cache = ec
			}
			cfg := testConfig(s.dir)
			cfg.UploadLogs, cfg.LogDir = LogsAll, logDir
			u := newTestUploader(t, cfg, cache, s, nil, nil)
			res, err := u.PublishBuild(context.Background(), drv)
			if err != nil {
				t.Fatal(err)
			}
			key := "log/" + filepath.Base(drv)
			if res.Log != LogUploaded || res.LogBytes != int64(len(text)) {
				t.Errorf("result %+v, want the log uploaded, %d bytes", res, len(text))
			}
			data, ok := fc.object(key)
			if !ok {
				t.Fatalf("no %s in the cache: %v", key, fc.putLog())
			}
			if tc.encoded {
				if ec.encodings[key] != "gzip" {
					t.Errorf("Content-Encoding %q, want gzip", ec.encodings[key])
				}
				zr, err := gzip.NewReader(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				if data, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if string(data) != text {
				t.Errorf("log %q, want %q", data, text)
			}
			if got := fc.typeOf(key); got != "text/plain; charset=utf-8" {
				t.Errorf("content type %q", got)
			}
			// Again: the cache has it.
			res, err = u.PublishBuild(context.Background(), drv)
			if err != nil || res.Log != LogPresent || fc.attemptsOf(key) != 1 {
				t.Errorf("second publish: %+v, %v, %d puts; want present and no new put", res, err, fc.attemptsOf(key))
			}
		})
	}
}

func TestPublishBuildLogPolicy(t *testing.T) {
	s := newFakeStore(t)
	logDir := t.TempDir()
	withLog := addDrv(t, s, logDir, "with-log", []byte("x\n"), false)
	noLog := addDrv(t, s, logDir, "no-log", nil, false)
	c := newFakeCache()

	cfg := testConfig(s.dir)
	cfg.LogDir = logDir
	u := newTestUploader(t, cfg, c, s, nil, nil)
	if res, err := u.PublishBuild(context.Background(), withLog); err != nil || res.Log != LogOff || len(c.putLog()) != 0 {
		t.Errorf("upload-logs none: %+v, %v, put %v; want nothing", res, err, c.putLog())
	}
	cfg.UploadLogs = LogsAll
	u = newTestUploader(t, cfg, c, s, nil, nil)
	if res, err := u.PublishBuild(context.Background(), noLog); err != nil || res.Log != LogAbsent {
		t.Errorf("no log kept: %+v, %v; want absent, no error", res, err)
	}
	if _, err := u.PublishBuild(context.Background(), filepath.Join(s.dir, hashPart("gone.drv")+"-gone.drv")); err == nil {
		t.Error("a missing derivation published")
	}
	if _, err := u.PublishBuild(context.Background(), filepath.Join(s.dir, hashPart("x")+"-x")); err == nil {
		t.Error("a non-derivation published")
	}
	cfg.Filters.Exclude = "^with-"
	u = newTestUploader(t, cfg, c, s, nil, nil)
	if res, err := u.PublishBuild(context.Background(), withLog); err != nil || res.Log != LogExcluded || len(c.putLog()) != 0 {
		t.Errorf("excluded derivation: %+v, %v, put %v; want its log left out", res, err, c.putLog())
	}
	cfg.Filters.Exclude = ""
	cfg.UploadLogs = "failed"
	if _, err := New(cfg, c, s, nil, nil, nil); err == nil {
		t.Error(`upload-logs "failed" accepted`)
	}
}

func TestPublishBuildRealisations(t *testing.T) {
	s := newFakeStore(t)
	dep := s.add(t, "dep", map[string]string{"f": "dep"})
	out := s.add(t, "ca-out", map[string]string{"f": "built"}, dep)
	secret := s.add(t, "secret-out", map[string]string{"f": "x"})
	drv := addDrv(t, s, t.TempDir(), "ca", nil, false)
	drv2 := addDrv(t, s, t.TempDir(), "ca-secret", nil, false)
	queries := 0
	src := realisingStore{fakeStore: s, queries: &queries, reals: map[string][]nix.Realisation{
		drv: {{DrvPath: filepath.Base(drv), OutputName: "out", OutPath: filepath.Base(out),
			ID: "sha256:775297e6536df2ac3b7a2deb9cdc32d77c9438d722c5fdbae21d0ac6a4ccdc4e!out", Dependent: map[string]string{}}},
		drv2: {{DrvPath: filepath.Base(drv2), OutputName: "out", OutPath: filepath.Base(secret)}},
	}}
	key, err := nix.GenerateKey("cache-1")
	if err != nil {
		t.Fatal(err)
	}
	c := newFakeCache()
	cfg := testConfig(s.dir)
	cfg.Filters.Exclude = "^secret"
	u := newTestUploader(t, cfg, c, src, nil, key)

	res, err := u.PublishBuild(context.Background(), drv)
	if err != nil {
		t.Fatal(err)
	}
	if res.Realisations != 1 || res.Uploaded != 2 {
		t.Errorf("result %+v, want 1 realisation and 2 paths uploaded", res)
	}
	r := src.reals[drv][0]
	v1, trace := r.KeyV1(), r.TraceKey()
	puts := c.putLog()
	narinfo := keyOf(t, s.dir, out)
	i, j, k := slices.Index(puts, narinfo), slices.Index(puts, v1), slices.Index(puts, trace)
	if i < 0 || j < i || k < i {
		t.Errorf("put order %v: want %s before %s and %s", puts, narinfo, v1, trace)
	}
	r.Sign(key)
	if data, _ := c.object(v1); string(data) != string(r.JSONV1()) {
		t.Errorf("%s = %s, want %s", v1, data, r.JSONV1())
	}
	if data, _ := c.object(trace); string(data) != string(r.TraceJSON()) {
		t.Errorf("%s = %s, want %s", trace, data, r.TraceJSON())
	}
	if !key.Public().Verify(r.FingerprintV1(), r.Signatures[0]) || !r.VerifyTraceSignature(key.Public(), r.TraceSignatures[0]) {
		t.Error("signatures do not verify")
	}
	checkCache(t, c, s.dir, nil)

	res, err = u.PublishBuild(context.Background(), drv2)
	if err != nil || res.Realisations != 0 || res.HeldBackRealisations != 1 {
		t.Errorf("excluded output: %+v, %v; want the realisation held back", res, err)
	}
	if ok, _ := c.Has(context.Background(), src.reals[drv2][0].TraceKey()); ok {
		t.Error("realisation of an excluded output published")
	}

	// An input-addressed derivation lists its output paths: Nix is not
	// asked for realisations.
	ia := filepath.Join(s.dir, hashPart("ia.drv")+"-ia.drv")
	if err := os.WriteFile(ia, []byte(`Derive([("out","`+out+`","","")],[],[],"x","/bin/sh",[],[])`), 0o444); err != nil {
		t.Fatal(err)
	}
	before := queries
	if res, err := u.PublishBuild(context.Background(), ia); err != nil || res.Realisations != 0 || queries != before {
		t.Errorf("input-addressed: %+v, %v, %d queries; want none", res, err, queries-before)
	}
}

func TestParseRealisations(t *testing.T) {
	// Nix 2.8's `nix realisation info --json` for a CA derivation.
	nix28 := `[{"dependentRealisations":{},"id":"sha256:775297e6536df2ac3b7a2deb9cdc32d77c9438d722c5fdbae21d0ac6a4ccdc4e!out","outPath":"x4aqmbbmgz6nn1inamd45d097k3j82la-ca-test-5901","signatures":["k:c2ln"]}]`
	rs, err := parseRealisations([]byte(nix28), "/nix/store", "zy901pqr1dx2lvz0m02diblalih8k5w2-ca-test-5901.drv")
	if err != nil || len(rs) != 1 {
		t.Fatalf("%v, %v", rs, err)
	}
	r := rs[0]
	if r.OutputName != "out" || r.OutPath != "x4aqmbbmgz6nn1inamd45d097k3j82la-ca-test-5901" || r.DrvPath != "zy901pqr1dx2lvz0m02diblalih8k5w2-ca-test-5901.drv" ||
		len(r.Signatures) != 1 || r.ID == "" {
		t.Errorf("parsed %+v", r)
	}
	// The keyed form, with full paths.
	keyed := `[{"key":{"drvPath":"/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv","outputName":"foo"},"value":{"outPath":"/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo","signatures":[]}},{"opaquePath":"/nix/store/x"}]`
	rs, err = parseRealisations([]byte(keyed), "/nix/store", "ignored.drv")
	if err != nil || len(rs) != 1 || rs[0].DrvPath != "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv" || rs[0].OutPath != "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo" || rs[0].ID != "" {
		t.Errorf("keyed: %+v, %v", rs, err)
	}
	for _, bad := range []string{`{}`, `[{"id":"sha256:ab"}]`, `[{"outPath":"x"}]`, `[{"id":"sha256:ab!out","outPath":"/nix/store/../x"}]`} {
		if rs, err := parseRealisations([]byte(bad), "/nix/store", "zy901pqr1dx2lvz0m02diblalih8k5w2-d.drv"); err == nil {
			t.Errorf("parsed %s as %+v", bad, rs)
		}
	}
}

// TestPublishBuildWaitsForDependentRealisations: a realisation listing
// dependentRealisations is written only once those are in the cache.
func TestPublishBuildWaitsForDependentRealisations(t *testing.T) {
	s := newFakeStore(t)
	depOut := s.add(t, "dep", map[string]string{"f": "dep"})
	topOut := s.add(t, "top", map[string]string{"f": "top"}, depOut)
	depDrv := addDrv(t, s, t.TempDir(), "dep", nil, false)
	topDrv := addDrv(t, s, t.TempDir(), "top", nil, false)
	const depID = "sha256:44f25a8175747f3942107a57645c8ec121b142846449473ad4963401872154fd!out"
	queries := 0
	src := realisingStore{fakeStore: s, queries: &queries, reals: map[string][]nix.Realisation{
		depDrv: {{DrvPath: filepath.Base(depDrv), OutputName: "out", OutPath: filepath.Base(depOut), ID: depID, Dependent: map[string]string{}}},
		topDrv: {{DrvPath: filepath.Base(topDrv), OutputName: "out", OutPath: filepath.Base(topOut),
			ID: "sha256:f7c19c462eec28ed556c78eda8c29b1e85b6527811c4382b0b6b6125a27d740d!out", Dependent: map[string]string{depID: filepath.Base(depOut)}}},
	}}
	c := newFakeCache()
	u := newTestUploader(t, testConfig(s.dir), c, src, nil, nil)
	_, err := u.PublishBuild(context.Background(), topDrv)
	if !errors.Is(err, ErrRealisationPending) || Classify(err).Permanent {
		t.Fatalf("top before dep: %v; want a transient ErrRealisationPending", err)
	}
	top := src.reals[topDrv][0]
	if ok, _ := c.Has(context.Background(), top.KeyV1()); ok {
		t.Fatal("realisation written before the one it depends on")
	}
	if _, err := u.PublishBuild(context.Background(), depDrv); err != nil {
		t.Fatal(err)
	}
	if res, err := u.PublishBuild(context.Background(), topDrv); err != nil || res.Realisations != 1 {
		t.Fatalf("top after dep: %+v, %v", res, err)
	}
	if data, _ := c.object(top.KeyV1()); !strings.Contains(string(data), depID) {
		t.Errorf("%s lacks its dependent realisation: %s", top.KeyV1(), data)
	}
}

func TestWantsBuild(t *testing.T) {
	s := newFakeStore(t)
	ca := addDrv(t, s, t.TempDir(), "ca", nil, false)
	ia := filepath.Join(s.dir, hashPart("ia.drv")+"-ia.drv")
	if err := os.WriteFile(ia, []byte(`Derive([("out","`+s.dir+`/x-ia","","")],[],[],"x","/bin/sh",[],[])`), 0o444); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(s.dir)
	u := newTestUploader(t, cfg, newFakeCache(), s, nil, nil)
	if u.WantsBuild(ia) || !u.WantsBuild(ca) {
		t.Errorf("logs none: WantsBuild(ia) = %v, WantsBuild(ca) = %v; want false, true", u.WantsBuild(ia), u.WantsBuild(ca))
	}
	cfg.UploadLogs = LogsAll
	u = newTestUploader(t, cfg, newFakeCache(), s, nil, nil)
	if !u.WantsBuild(ia) {
		t.Error("logs all: an input-addressed build is not wanted")
	}
}
