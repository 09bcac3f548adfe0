package verify_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/scan/scantest"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/verify"
)

// consistencyGuard fails the test when a narinfo is deleted while another
// narinfo that stays references it.
func consistencyGuard(t *testing.T, f *fixture) *scantest.Faulty {
	return &scantest.Faulty{Cache: f.cache, BeforeDelete: func(key string) error {
		hash := scan.HashPart(key)
		if scan.Classify(key) != scan.ClassNarInfo {
			return nil
		}
		err := f.cache.List(context.Background(), "", func(o uploader.Object) error {
			if scan.Classify(o.Key) != scan.ClassNarInfo || o.Key == key {
				return nil
			}
			data, err := scantest.Get(context.Background(), f.cache, o.Key)
			if err != nil {
				return nil // deleted meanwhile
			}
			ni, err := nix.ParseNarInfo(data)
			if err != nil {
				return nil
			}
			for _, r := range ni.References {
				if strings.HasPrefix(r, hash+"-") {
					t.Errorf("deleting %s while %s still references it", key, o.Key)
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		return nil
	}}
}

func TestRepairMakesTheCacheClean(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "zstd")
	broken(t, f)
	// The local store has everything but "gone" and its referrers, and the
	// path signed by another key, which cannot be signed again then.
	for sp, p := range f.paths {
		if !strings.Contains(p.Base, "gone") && !strings.Contains(p.Base, "top") && !strings.Contains(p.Base, "otherkey") {
			f.local[sp] = true
		}
	}
	cfg := f.cfg()
	cfg.CheckNarHashes = true
	r, g := f.check(t, f.cache, cfg)
	plan, err := verify.PlanRepair(ctx, r, g, f, verify.RepairOptions{DeleteOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sp := range plan.Republish {
		names = append(names, f.paths[sp].Base[33:])
	}
	slices.Sort(names)
	if want := []string{"corrupt", "invalid", "nonar", "short", "unsigned"}; !slices.Equal(names, want) {
		t.Errorf("republish %v, want %v", names, want)
	}
	var removed []string
	for _, rm := range plan.Remove {
		removed = append(removed, rm.StorePath[len(storeDir)+34:])
	}
	if want := []string{"top", "over-gone"}; !slices.Equal(removed, want) {
		t.Errorf("remove %v, want %v (referrers first)", removed, want)
	}
	if len(plan.Unrepairable) != 1 || plan.Unrepairable[0].Kind != verify.SignatureUntrusted {
		t.Errorf("unrepairable %+v", plan.Unrepairable)
	}
	// The old orphan, and the NARs of the two removed narinfos.
	if len(plan.Orphans) != 3 || len(plan.Pending) != 1 || !plan.CreateCacheInfo {
		t.Errorf("plan %+v", plan)
	}
	var text bytes.Buffer
	if err := plan.WriteText(&text, 0); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"create nix-cache-info", "publish 5 paths again", "remove 2 narinfos", "depends on", "cannot repair 1 problems"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("plan text lacks %q:\n%s", s, text.String())
		}
	}

	// The removed narinfos' NARs are young: make them look old, as
	// a grace period of 1h would see NARs published yesterday.
	for _, k := range plan.Orphans {
		f.age(t, k, 2*time.Hour)
	}
	cfg.Grace = time.Hour
	pub := &publisher{f: f, t: t}
	res, err := verify.Repair(ctx, consistencyGuard(t, f), pub, g, plan, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Republished != 5 || res.Removed != 2 || res.OrphansDeleted != 3 || res.Aborted != 1 || !res.CacheInfoCreated || len(res.Failed) != 0 {
		t.Errorf("result %+v", res)
	}
	after, _ := f.check(t, f.cache, cfg)
	if got := problems(after); len(got) != 1 || !strings.HasPrefix(got[0], "signature-untrusted") {
		t.Errorf("after the repair: %v; want only the unrepairable signature", got)
	}
}

func TestRepairIsSafeToInterrupt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "none")
	// A chain of 6 paths over a path whose NAR is gone; nothing is local.
	base := f.path("base")
	chain := []*scantest.Path{base}
	for i := range 6 {
		chain = append(chain, f.path("c"+string(rune('a'+i)), chain[len(chain)-1]))
	}
	f.publish(t, chain...)
	if err := f.cache.Delete(ctx, f.narKey(t, base)); err != nil {
		t.Fatal(err)
	}
	cfg := f.cfg()
	for deletes := int64(1); ; deletes++ {
		r, g := f.check(t, f.cache, cfg)
		if r.Clean() {
			t.Logf("clean after %d runs", deletes)
			if deletes < 3 {
				t.Fatalf("clean after %d interrupted runs", deletes)
			}
			break
		}
		// Whatever the interruption left, every problem is one the
		// original break explains: no reference ever dangles.
		for _, p := range r.Problems {
			if p.Kind != verify.NarMissing && p.Kind != verify.OrphanNar {
				t.Fatalf("after an interrupted repair: %v", problems(r))
			}
		}
		plan, err := verify.PlanRepair(ctx, r, g, f, verify.RepairOptions{})
		if err != nil {
			t.Fatal(err)
		}
		guard := consistencyGuard(t, f)
		inner := guard.BeforeDelete
		guard.BeforeDelete = func(key string) error {
			if guard.Deletes.Load() > 2 {
				return errInjected // the third delete and later fail: interrupted
			}
			return inner(key)
		}
		_, err = verify.Repair(ctx, guard, &publisher{f: f, t: t}, g, plan, cfg, nil)
		if err != nil && !errors.Is(err, errInjected) {
			t.Fatal(err)
		}
		if deletes > 10 {
			t.Fatal("the repair does not converge")
		}
	}
}

func TestRepairKeepsWhatWasMendedMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "none")
	p := f.path("p")
	q := f.path("q", p)
	f.publish(t, p, q)
	nar, err := scantest.Get(ctx, f.cache, f.narKey(t, p))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cache.Delete(ctx, f.narKey(t, p)); err != nil {
		t.Fatal(err)
	}
	r, g := f.check(t, f.cache, f.cfg())
	plan, err := verify.PlanRepair(ctx, r, g, f, verify.RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Remove) != 2 {
		t.Fatalf("plan removes %+v, want q and p", plan.Remove)
	}
	// A builder publishes p again before the repair runs.
	if err := f.w.PutRaw(ctx, f.narKey(t, p), nar); err != nil {
		t.Fatal(err)
	}
	res, err := verify.Repair(ctx, f.cache, &publisher{f: f, t: t}, g, plan, f.cfg(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 0 || res.Kept != 2 {
		t.Errorf("result %+v, want both kept", res)
	}
	if r, _ := f.check(t, f.cache, f.cfg()); !r.Clean() {
		t.Errorf("after: %v", problems(r))
	}
}

func TestRepairLeavesOrphansWithoutDeleteOrphans(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "none")
	if err := f.w.PutRaw(ctx, "nar/1111111111111111111111111111111111111111111111111111.nar", []byte("old")); err != nil {
		t.Fatal(err)
	}
	f.age(t, "nar/1111111111111111111111111111111111111111111111111111.nar", 48*time.Hour)
	r, g := f.check(t, f.cache, f.cfg())
	plan, err := verify.PlanRepair(ctx, r, g, f, verify.RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Empty() || len(plan.Orphans) != 1 {
		t.Fatalf("plan %+v", plan)
	}
	res, err := verify.Repair(ctx, f.cache, &publisher{f: f, t: t}, g, plan, f.cfg(), nil)
	if err != nil || res.OrphansDeleted != 0 {
		t.Fatalf("Repair = %+v, %v", res, err)
	}
	if ok, _ := f.cache.Has(ctx, "nar/1111111111111111111111111111111111111111111111111111.nar"); !ok {
		t.Error("orphan deleted without DeleteOrphans")
	}
	// With it, but an upload writes the NAR again in between: kept.
	plan, _ = verify.PlanRepair(ctx, r, g, f, verify.RepairOptions{DeleteOrphans: true})
	if err := f.w.PutRaw(ctx, "nar/1111111111111111111111111111111111111111111111111111.nar", []byte("new")); err != nil {
		t.Fatal(err)
	}
	res, err = verify.Repair(ctx, f.cache, &publisher{f: f, t: t}, g, plan, f.cfg(), nil)
	if err != nil || res.OrphansDeleted != 0 {
		t.Fatalf("Repair = %+v, %v; want the rewritten NAR kept", res, err)
	}
}

// agingPublisher publishes like publisher and then makes the NARs look
// old, as a NAR uploaded again under its old key looks to a cache that
// keeps the first modification time.
type agingPublisher struct{ publisher }

func (p *agingPublisher) Republish(ctx context.Context, roots []string, done func(string, uploader.Result, error)) {
	p.publisher.Republish(ctx, roots, done)
	for _, r := range roots {
		p.f.age(p.t, p.f.narKey(p.t, p.f.paths[r]), 2*time.Hour)
	}
}

func TestRepairNeverDeletesANarItPublishedAgain(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "none")
	p := f.path("p")
	f.publish(t, p)
	f.local[p.StorePath] = true
	if err := f.w.PutRaw(ctx, p.HashPart+".narinfo", []byte("garbage\n")); err != nil {
		t.Fatal(err)
	}
	f.age(t, f.narKey(t, p), 2*time.Hour)
	cfg := f.cfg()
	cfg.Grace = time.Hour
	r, g := f.check(t, f.cache, cfg)
	if got := problems(r); len(got) != 2 || !strings.HasPrefix(got[0], "narinfo-invalid") || !strings.HasPrefix(got[1], "orphan-nar") {
		t.Fatalf("problems %v", got)
	}
	plan, err := verify.PlanRepair(ctx, r, g, f, verify.RepairOptions{DeleteOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := verify.Repair(ctx, f.cache, &agingPublisher{publisher{f: f, t: t}}, g, plan, cfg, nil)
	if err != nil || res.Republished != 1 || res.OrphansDeleted != 0 {
		t.Fatalf("Repair = %+v, %v", res, err)
	}
	if after, _ := f.check(t, f.cache, cfg); !after.Clean() {
		t.Errorf("after: %v", problems(after))
	}
}

func TestRepairDeletesNarsReplacedByAnotherCompression(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "none")
	p := f.path("p")
	if _, err := (&scantest.Writer{Cache: f.cache, StoreDir: storeDir}).Publish(ctx, p); err != nil { // unsigned
		t.Fatal(err)
	}
	f.local[p.StorePath] = true
	oldNar := f.narKey(t, p)
	f.age(t, oldNar, 2*time.Hour)
	cfg := f.cfg()
	cfg.Grace = time.Hour
	r, g := f.check(t, f.cache, cfg)
	plan, err := verify.PlanRepair(ctx, r, g, f, verify.RepairOptions{DeleteOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	f.w.Compression = "zstd" // the repair publishes with another compression
	res, err := verify.Repair(ctx, f.cache, &publisher{f: f, t: t}, g, plan, cfg, nil)
	if err != nil || res.Republished != 1 || res.OrphansDeleted != 1 {
		t.Fatalf("Repair = %+v, %v; want p published again and its old NAR deleted", res, err)
	}
	if ok, _ := f.cache.Has(ctx, oldNar); ok {
		t.Errorf("the replaced NAR %s is still there", oldNar)
	}
	if after, _ := f.check(t, f.cache, cfg); !after.Clean() {
		t.Errorf("after: %v", problems(after))
	}
}
