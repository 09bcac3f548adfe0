package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/nix"
)

// scenario publishes generations of closures sharing dependencies, a pin,
// a re-asserted root, two paths sharing one NAR and orphaned NARs, and
// returns the keys that must survive a gc with cutoff and the contents.
func scenario(t *testing.T, b *bucket, now time.Time) (cutoff time.Time, keep []string, contents map[string]string) {
	t.Helper()
	ctx := context.Background()
	old, recent := now.Add(-30*24*time.Hour), now.Add(-time.Hour)
	cutoff = now.Add(-7 * 24 * time.Hour)
	contents = map[string]string{}
	pub := func(name string, at time.Time, refs ...string) {
		if contents[name] == "" {
			contents[name] = "contents of " + name
		}
		b.publish(name, contents[name], at, refs...)
	}
	pub("glibc", old)
	pub("lib1", old, "glibc")
	pub("gen1", old, "lib1", "glibc")
	pub("lib2", old, "glibc")
	pub("gen2", old, "lib2", "lib1")
	contents["twinA"], contents["twinB"] = "same bytes", "same bytes"
	pub("twinA", old)
	pub("twinB", old)
	pub("lib3", old, "glibc")
	pub("gen3", recent, "lib3", "twinB")
	pub("libp", old)
	pub("pinned", old, "libp")
	pub("libr", old)
	pub("rooted", old, "libr")
	b.put("nar/oldorphan.nar", "x", old)
	b.put("nar/neworphan.nar", "y", recent)
	b.put(RootKey(mustPath(t, pathOf("gen1")), now.Add(-20*24*time.Hour)), pathOf("gen1")+"\n", old)
	b.put(RootKey(mustPath(t, pathOf("rooted")), now), pathOf("rooted")+"\n", now)
	if err := PutPin(ctx, b.cache, nix.DefaultStoreDir, Pin{Name: "prod", Paths: []string{pathOf("pinned")}}); err != nil {
		t.Fatal(err)
	}
	keep = objectsOf(contents, "glibc", "lib3", "gen3", "twinB", "libp", "pinned", "libr", "rooted")
	keep = append(keep, "nar/neworphan.nar", RootKey(mustPath(t, pathOf("rooted")), now), PinsPrefix+"prod")
	slices.Sort(keep)
	return cutoff, keep, contents
}

func mustPath(t *testing.T, p string) nix.StorePath {
	t.Helper()
	sp, err := nix.ParseStorePath(nix.DefaultStoreDir, p)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestCollect(t *testing.T) {
	ctx := t.Context()
	b := newBucket(t)
	now := time.Now()
	cutoff, keep, _ := scenario(t, b, now)
	before := b.keys()

	cfg := testConfig(cutoff)
	cfg.DryRun = true
	dry, err := Run(ctx, b.cache, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(b.keys(), before); d != "" {
		t.Fatalf("the dry run changed the bucket:\n%s", d)
	}
	cfg.DryRun = false
	rep, err := Run(ctx, b.cache, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(b.keys(), keep); d != "" {
		t.Fatalf("after gc:\n%s", d)
	}
	b.checkConsistent(ctx)
	want := Tally{
		NarInfos: Count{Objects: 5}, // gen1, lib1, gen2, lib2, twinA
		Nars:     Count{Objects: 5}, // theirs but twinA's (shared), and the old orphan
		Listings: Count{Objects: 5},
		Roots:    Count{Objects: 1},
	}
	for _, got := range []Tally{dry.Deleted, rep.Deleted} {
		if got.NarInfos.Objects != want.NarInfos.Objects || got.Nars.Objects != want.Nars.Objects ||
			got.Listings.Objects != want.Listings.Objects || got.Roots.Objects != want.Roots.Objects {
			t.Errorf("deleted %+v, want %+v", got, want)
		}
	}
	if rep.Kept.NarInfos.Objects != 8 || rep.Recent != 1 || rep.Roots != 1 || rep.Pinned != 1 {
		t.Errorf("report %+v", rep)
	}
	if rep.Requests == 0 {
		t.Error("no requests counted")
	}
	last, err := ReadReport(ctx, b.cache)
	if err != nil || last.Deleted.NarInfos.Objects != 5 {
		t.Fatalf("last report %+v, %v", last, err)
	}

	// A second run finds nothing more to do.
	rep, err = Run(ctx, b.cache, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if tot := rep.Deleted.Total(); tot.Objects != 0 {
		t.Errorf("second run deleted %+v", rep.Deleted)
	}
}

// TestKillPoints stops a run before its k-th deletion, for every k, and
// checks the bucket is consistent each time and a later run completes it.
func TestKillPoints(t *testing.T) {
	ctx := t.Context()
	b0 := newBucket(t)
	now := time.Now()
	scenario(t, b0, now)
	total := len(b0.keys())
	errKilled := errors.New("killed")
	for k := range total {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			b := newBucket(t)
			cutoff, keep, _ := scenario(t, b, now)
			cfg := testConfig(cutoff)
			var n atomic.Int64
			cfg.BeforeDelete = func(string) error {
				if n.Add(1) > int64(k) {
					return errKilled
				}
				return nil
			}
			_, err := Run(ctx, b.cache, cfg, nil)
			if err != nil && !errors.Is(err, errKilled) {
				t.Fatal(err)
			}
			b.checkConsistent(ctx)
			cfg.BeforeDelete = nil
			if _, err := Run(ctx, b.cache, cfg, nil); err != nil {
				t.Fatal(err)
			}
			if d := diff(b.keys(), keep); d != "" {
				t.Fatalf("after the second run:\n%s", d)
			}
		})
	}
}

// TestLiveBuilderRestore publishes, while gc settles after deleting
// narinfos, a narinfo referencing one it deleted: gc writes that back.
func TestLiveBuilderRestore(t *testing.T) {
	ctx := t.Context()
	b := newBucket(t)
	now := time.Now()
	cutoff, keep, contents := scenario(t, b, now)
	cfg := testConfig(cutoff)
	cfg.Settle = 50 * time.Millisecond
	settles := 0
	cfg.Progress = func(p Progress) {
		if p.Phase == "settle" {
			if settles++; settles == 1 {
				// A builder saw gen2 and lib1 before they were deleted.
				contents["gen4"] = "contents of gen4"
				b.publish("gen4", contents["gen4"], time.Now(), "gen2")
			}
		}
	}
	rep, err := Run(ctx, b.cache, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	b.checkConsistent(ctx)
	if rep.Restored != 3 { // gen2, lib2, lib1 (glibc was kept)
		t.Errorf("restored %d narinfos, want 3", rep.Restored)
	}
	want := append(slices.Clone(keep), objectsOf(contents, "gen4", "gen2", "lib2", "lib1")...)
	slices.Sort(want)
	want = slices.Compact(want)
	if d := diff(b.keys(), want); d != "" {
		t.Fatalf("after gc:\n%s", d)
	}
}

// TestLiveBuilderRetract publishes, while gc settles after deleting NARs,
// a narinfo whose NAR gc deleted: gc deletes that narinfo.
func TestLiveBuilderRetract(t *testing.T) {
	ctx := t.Context()
	b := newBucket(t)
	now := time.Now()
	cutoff, keep, contents := scenario(t, b, now)
	cfg := testConfig(cutoff)
	cfg.Settle = 50 * time.Millisecond
	settles := 0
	cfg.Progress = func(p Progress) {
		if p.Phase == "settle" {
			if settles++; settles == 2 {
				// Same contents as gen1, published as gen1's NAR went away;
				// and a path referring to it.
				b.publish("gen1twin", contents["gen1"], time.Now(), "glibc")
				b.publish("user", "contents of user", time.Now(), "gen1twin")
			}
		}
	}
	rep, err := Run(ctx, b.cache, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	b.checkConsistent(ctx)
	if rep.Retracted != 2 {
		t.Errorf("retracted %d, want 2", rep.Retracted)
	}
	got := b.keys()
	for _, k := range keep {
		if !slices.Contains(got, k) {
			t.Errorf("%s is gone", k)
		}
	}
}

func TestLock(t *testing.T) {
	ctx := t.Context()
	b := newBucket(t)
	now := time.Now()
	clock := func() time.Time { return now }
	l, err := AcquireLock(ctx, b.cache, time.Minute, time.Millisecond, clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLock(ctx, b.cache, time.Minute, time.Millisecond, clock); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	cutoff := now.Add(-time.Hour)
	if _, err := Run(ctx, b.cache, Config{Cutoff: cutoff, Now: clock}, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("gc beside a held lock: %v, want ErrLocked", err)
	}
	if err := l.Held(); err != nil {
		t.Fatal(err)
	}
	// The holder is killed: after the TTL the lock is free.
	later := func() time.Time { return now.Add(2 * time.Minute) }
	l2, err := AcquireLock(ctx, b.cache, time.Minute, time.Millisecond, later)
	if err != nil {
		t.Fatalf("expired lock not taken over: %v", err)
	}
	// The first holder notices at its next refresh and stops deleting.
	if err := l.Refresh(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("refresh of a lost lock: %v", err)
	}
	if err := l.Held(); !errors.Is(err, ErrLocked) {
		t.Fatalf("lost lock still held: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.cache.Has(ctx, LockKey); !ok {
		t.Fatal("the loser released the winner's lock")
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.cache.Has(ctx, LockKey); ok {
		t.Fatal("lock not released")
	}
}

// TestGraceRescan: with a grace period, what is written between the two
// scans keeps its closure, without anything being deleted and restored.
func TestGraceRescan(t *testing.T) {
	ctx := t.Context()
	b := newBucket(t)
	now := time.Now()
	cutoff, keep, contents := scenario(t, b, now)
	cfg := testConfig(cutoff)
	cfg.Grace = 100 * time.Millisecond
	cfg.Progress = func(p Progress) {
		if p.Phase == "grace" {
			contents["gen4"] = "contents of gen4"
			b.publish("gen4", contents["gen4"], time.Now(), "gen2")
		}
	}
	rep, err := Run(ctx, b.cache, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	b.checkConsistent(ctx)
	if rep.Restored != 0 || rep.Deleted.NarInfos.Objects != 2 { // gen1 and twinA
		t.Errorf("restored %d, deleted %+v; want 0 and gen1, twinA", rep.Restored, rep.Deleted.NarInfos)
	}
	want := append(slices.Clone(keep), objectsOf(contents, "gen4", "gen2", "lib2", "lib1")...)
	slices.Sort(want)
	want = slices.Compact(want)
	if d := diff(b.keys(), want); d != "" {
		t.Fatalf("after gc:\n%s", d)
	}
}
