package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/scan/scantest"
	"github.com/nixs3q/nixs3q/verify"
)

func TestCheckHealthyCache(t *testing.T) {
	for _, comp := range []string{"none", "zstd", "xz"} {
		t.Run(comp, func(t *testing.T) {
			f := newFixture(t, comp)
			c := f.path("c")
			b := f.path("b", c)
			a := f.path("a", b, c)
			a.SelfRef = true
			f.publish(t, c, b, a)
			cfg := f.cfg()
			cfg.CheckNarHashes = true
			r, _ := f.check(t, f.cache, cfg)
			if !r.Clean() || r.NarInfos != 3 || r.Nars != 3 || r.NarsHashed != 3 || r.Dismissed != 0 {
				t.Errorf("report %+v, want a clean one with 3 narinfos and NARs", r)
			}
			var text bytes.Buffer
			if err := r.WriteText(&text, 10); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text.String(), "problems: none") {
				t.Errorf("summary:\n%s", text.String())
			}
		})
	}
}

// broken publishes a cache with one problem of each kind and returns the
// problems expected, as "kind key".
func broken(t *testing.T, f *fixture) []string {
	t.Helper()
	ctx := context.Background()
	leaf := f.path("leaf")
	noNar := f.path("nonar", leaf)
	short := f.path("short")
	corrupt := f.path("corrupt")
	invalid := f.path("invalid")
	overInvalid := f.path("over-invalid", invalid)
	gone := f.path("gone")
	overGone := f.path("over-gone", gone)
	top := f.path("top", overGone, leaf)
	unsigned := f.path("unsigned")
	otherKey := f.path("otherkey")
	f.publish(t, leaf, noNar, short, corrupt, invalid, overInvalid, gone, overGone, top)

	if err := f.cache.Delete(ctx, f.narKey(t, noNar)); err != nil {
		t.Fatal(err)
	}
	nar, err := scantest.Get(ctx, f.cache, f.narKey(t, short))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.w.PutRaw(ctx, f.narKey(t, short), nar[:len(nar)/2]); err != nil {
		t.Fatal(err)
	}
	nar, err = scantest.Get(ctx, f.cache, f.narKey(t, corrupt))
	if err != nil {
		t.Fatal(err)
	}
	if f.w.Compression == "none" {
		nar[len(nar)-20] ^= 1 // a byte of the file's contents
	} else {
		nar[len(nar)/2] ^= 0xff
	}
	if err := f.w.PutRaw(ctx, f.narKey(t, corrupt), nar); err != nil {
		t.Fatal(err)
	}
	if err := f.w.PutRaw(ctx, invalid.HashPart+".narinfo", []byte("StorePath: nonsense\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.cache.Delete(ctx, gone.HashPart+".narinfo"); err != nil {
		t.Fatal(err)
	}
	f.age(t, f.narKey(t, gone), 48*time.Hour) // now an old orphan
	(&scantest.Writer{Cache: f.cache, StoreDir: storeDir, Compression: f.w.Compression}).Publish(ctx, unsigned)
	(&scantest.Writer{Cache: f.cache, StoreDir: storeDir, Key: f.other, Compression: f.w.Compression}).Publish(ctx, otherKey)
	// A young orphan and a young unfinished upload are uploads in progress.
	if err := f.w.PutRaw(ctx, "nar/1111111111111111111111111111111111111111111111111111.nar", []byte("young")); err != nil {
		t.Fatal(err)
	}
	for _, tmp := range []string{"nar/.tmp-old.nar-123", "nar/.tmp-young.nar-456"} {
		if err := os.WriteFile(filepath.Join(f.dir, filepath.FromSlash(tmp)), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.age(t, "nar/.tmp-old.nar-123", 30*time.Hour)
	if err := f.cache.Delete(ctx, "nix-cache-info"); err != nil {
		t.Fatal(err)
	}
	return []string{
		"cache-info-missing nix-cache-info",
		"closure-incomplete " + top.HashPart + ".narinfo",
		"closure-incomplete " + overInvalid.HashPart + ".narinfo",
		"nar-hash " + corrupt.HashPart + ".narinfo",
		"nar-missing " + noNar.HashPart + ".narinfo",
		"nar-size " + short.HashPart + ".narinfo",
		"narinfo-invalid " + invalid.HashPart + ".narinfo",
		"orphan-nar " + f.narKey(t, gone),
		"pending-upload nar/old.nar",
		"reference-missing " + overGone.HashPart + ".narinfo",
		"signature-missing " + unsigned.HashPart + ".narinfo",
		"signature-untrusted " + otherKey.HashPart + ".narinfo",
	}
}

func TestCheckFindsEveryKindOfProblem(t *testing.T) {
	for _, comp := range []string{"none", "zstd", "xz"} {
		t.Run(comp, func(t *testing.T) {
			f := newFixture(t, comp)
			want := broken(t, f)
			cfg := f.cfg()
			cfg.CheckNarHashes = true
			r, _ := f.check(t, f.cache, cfg)
			got := problems(r)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			if r.Recent != 3 {
				// The young orphan, the young upload, and the NAR of the
				// invalid narinfo, which no usable narinfo names.
				t.Errorf("Recent = %d, want 3", r.Recent)
			}
			if r.OrphanBytes == 0 || r.Counts[verify.ClosureIncomplete] != 2 {
				t.Errorf("report %+v", r)
			}
			var text, js bytes.Buffer
			if err := r.WriteText(&text, 5); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"problems: 12 (", "1 nar-missing", "... and 7 more", "younger than the grace period"} {
				if !strings.Contains(text.String(), s) {
					t.Errorf("summary lacks %q:\n%s", s, text.String())
				}
			}
			if err := r.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			var back struct {
				Problems []verify.Problem `json:"problems"`
				Counts   map[string]int   `json:"counts"`
			}
			if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Problems) != 12 || back.Counts["reference-missing"] != 1 {
				t.Errorf("JSON report %s: %v", js.String(), err)
			}

			// Without --check-nar-hashes the corrupt NAR goes unnoticed.
			r, _ = f.check(t, f.cache, f.cfg())
			if r.Counts[verify.NarHash] != 0 || len(r.Problems) != 11 {
				t.Errorf("without hashing: %v", problems(r))
			}
		})
	}
}

func TestCheckConfirmsWithDirectLookups(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "none")
	ref := f.path("ref")
	top := f.path("top", ref)
	other := f.path("other")
	f.publish(t, ref, top, other)
	refInfo, err := scantest.Get(ctx, f.cache, ref.HashPart+".narinfo")
	if err != nil {
		t.Fatal(err)
	}
	narKey := f.narKey(t, other)
	nar, err := scantest.Get(ctx, f.cache, narKey)
	if err != nil {
		t.Fatal(err)
	}
	// The listing misses ref's narinfo and other's NAR; a builder writes
	// them before the confirming lookups.
	for _, k := range []string{ref.HashPart + ".narinfo", narKey} {
		if err := f.cache.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	fc := &scantest.Faulty{Cache: f.cache, BeforeHas: func(key string) error {
		switch key {
		case ref.HashPart + ".narinfo":
			return f.w.PutRaw(ctx, key, refInfo)
		case narKey:
			return f.w.PutRaw(ctx, key, nar)
		}
		return nil
	}}
	r, _ := f.check(t, fc, f.cfg())
	if !r.Clean() || r.Dismissed != 2 {
		t.Errorf("problems %v, dismissed %d; want none reported and 2 dismissed", problems(r), r.Dismissed)
	}
}

// TestCheckWhileBuildersPublish checks a cache again and again while
// writers publish closures into it the way nixs3q does (NAR, then narinfo,
// references first): no check may report anything.
func TestCheckWhileBuildersPublish(t *testing.T) {
	f := newFixture(t, "none")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var published atomic.Int64
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				leaf := scantest.NewPath(storeDir, fmt.Sprintf("w%d-leaf-%d", w, i), []byte(fmt.Sprint(w, i)))
				mid := scantest.NewPath(storeDir, fmt.Sprintf("w%d-mid-%d", w, i), []byte(fmt.Sprint(w, i)), leaf)
				top := scantest.NewPath(storeDir, fmt.Sprintf("w%d-top-%d", w, i), []byte(fmt.Sprint(w, i)), mid, leaf)
				for _, p := range []*scantest.Path{leaf, mid, top} {
					if _, err := f.w.Publish(ctx, p); err != nil {
						return
					}
					published.Add(1)
				}
			}
		})
	}
	checks := 0
	for ; checks < 3 || (published.Load() < 60 && checks < 500); checks++ {
		r, _ := f.check(t, f.cache, f.cfg())
		if !r.Clean() {
			t.Errorf("a healthy cache under writes reported %v", problems(r))
		}
	}
	cancel()
	wg.Wait()
	if published.Load() < 60 {
		t.Errorf("only %d paths published during %d checks", published.Load(), checks)
	}
	t.Logf("%d checks while %d paths were published", checks, published.Load())
}

func TestCheckOtherStoreDir(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "none")
	if err := f.w.PutRaw(ctx, "nix-cache-info", []byte("StoreDir: /gnu/store\n")); err != nil {
		t.Fatal(err)
	}
	r, g := f.check(t, f.cache, f.cfg())
	if got := problems(r); !slices.Equal(got, []string{"cache-info-store-dir nix-cache-info"}) {
		t.Fatalf("problems %v", got)
	}
	plan, err := verify.PlanRepair(ctx, r, g, f, verify.RepairOptions{DeleteOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Refused == "" || !plan.Empty() {
		t.Errorf("plan %+v, want a refusal", plan)
	}
}

func TestCheckFailsWhenTheCacheCannotBeRead(t *testing.T) {
	f := newFixture(t, "none")
	p := f.path("p")
	f.publish(t, p)
	fc := &scantest.Faulty{Cache: f.cache, BeforeGet: func(key string) error {
		if key == p.HashPart+".narinfo" {
			return errInjected
		}
		return nil
	}}
	if _, _, err := verify.Check(context.Background(), fc, f.cfg(), nil); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Errorf("Check = %v, want the read error", err)
	}
}

var errInjected = fmt.Errorf("injected fault")

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg verify.Config
		ok  bool
	}{
		{verify.Config{}, true},
		{verify.Config{StoreDir: "x"}, false},
		{verify.Config{Grace: -1}, false},
		{verify.Config{NarConcurrency: -1}, false},
		{verify.Config{Concurrency: -1}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}
