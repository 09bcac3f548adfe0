package uploader

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

// diamond builds   a → b → d → e,  a → c → d,  c → e,  a → a,  e → e
// and returns the paths by letter.
func diamond(t *testing.T, s *fakeStore) map[string]string {
	p := map[string]string{}
	p["e"] = s.add(t, "e", map[string]string{"lib.so": "leaf"}, "self")
	p["d"] = s.add(t, "d", map[string]string{"d.txt": "d"}, p["e"])
	p["b"] = s.add(t, "b", map[string]string{"bin/b*": "#!/bin/sh\n"}, p["d"])
	p["c"] = s.add(t, "c", map[string]string{"c.txt": "c"}, p["d"], p["e"])
	p["a"] = s.add(t, "a", map[string]string{"a.txt": "root"}, p["b"], p["c"], "self")
	return p
}

func TestUploadDiamondOrdering(t *testing.T) {
	for _, conc := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("concurrency=%d", conc), func(t *testing.T) {
			s := newFakeStore(t)
			p := diamond(t, s)
			info := s.info(p["a"])
			info.Deriver = filepath.Join(s.dir, hashPart("a.drv")+"-a.drv")
			info.CA = "fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h"
			c := newFakeCache()
			cfg := testConfig(s.dir)
			cfg.Concurrency = conc
			u := newTestUploader(t, cfg, c, s, nil, nil)

			res, err := u.Upload(context.Background(), p["a"])
			if err != nil {
				t.Fatal(err)
			}
			if res.Uploaded != 5 || res.Skipped != 0 || res.Bytes <= 0 || res.NarBytes <= 0 {
				t.Errorf("result %+v, want 5 uploaded", res)
			}
			infos := checkCache(t, c, s.dir, nil)
			if len(infos) != 5 {
				t.Fatalf("%d narinfos published, want 5", len(infos))
			}
			var narBytes int64
			for _, ni := range infos {
				narBytes += int64(ni.NarSize)
			}
			if res.NarBytes != narBytes {
				t.Errorf("NarBytes %d, narinfos sum to %d", res.NarBytes, narBytes)
			}
			a := infos[keyOf(t, s.dir, p["a"])]
			base := func(x string) string { return filepath.Base(p[x]) }
			wantRefs := []string{base("a"), base("b"), base("c")}
			slices.Sort(wantRefs)
			if !slices.Equal(a.References, wantRefs) {
				t.Errorf("references %v, want %v", a.References, wantRefs)
			}
			if a.Deriver != hashPart("a.drv")+"-a.drv" || a.CA != info.CA || a.Compression != "zstd" {
				t.Errorf("narinfo %+v", a)
			}
			if want := "nar/" + nix.EncodeBase32(info.NarHash.Digest) + ".nar.zst"; a.URL != want {
				t.Errorf("URL %s, want %s", a.URL, want)
			}
			for key := range infos {
				if n := c.attemptsOf(key); n != 1 {
					t.Errorf("%s put %d times", key, n)
				}
			}
		})
	}
}

func TestUploadRandomDAG(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := newFakeStore(t)
	var paths []string
	for i := range 40 {
		var refs []string
		for j := range paths {
			if rng.IntN(6) == 0 {
				refs = append(refs, paths[j])
			}
		}
		if rng.IntN(3) == 0 {
			refs = append(refs, "self")
		}
		name := fmt.Sprintf("p%02d", i)
		paths = append(paths, s.add(t, name, map[string]string{"f": strings.Repeat(name, i*50+1)}, refs...))
	}
	root := s.add(t, "root", map[string]string{"f": "r"}, paths...)
	c := newFakeCache()
	// A third of the closure is already there.
	pre := map[string]bool{}
	warm := newTestUploader(t, testConfig(s.dir), c, s, nil, nil)
	for _, p := range paths[:13] {
		if _, err := warm.Upload(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range c.putLog() {
		pre[key] = true
	}
	checkCache(t, c, s.dir, nil)
	before := len(c.putLog())

	cfg := testConfig(s.dir)
	cfg.Concurrency = 3
	u := newTestUploader(t, cfg, c, s, nil, nil)
	res, err := u.Upload(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := s.PathInfo(context.Background(), []string{root}, true)
	var preCount int
	for _, info := range all {
		if pre[keyOf(t, s.dir, info.Path)] {
			preCount++
		}
	}
	if res.Uploaded != len(all)-preCount || res.Skipped != preCount {
		t.Errorf("result %+v, closure %d, pre-existing %d", res, len(all), preCount)
	}
	log := c.putLog()[before:]
	for _, key := range log {
		if pre[key] && strings.HasSuffix(key, ".narinfo") {
			t.Errorf("%s uploaded again", key)
		}
	}
	checkCache(t, c, s.dir, nil)
}

func TestUploadSkipsPresent(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	presence := newFakePresence()
	u := newTestUploader(t, testConfig(s.dir), c, s, presence, nil)
	if _, err := u.Upload(context.Background(), p["d"]); err != nil {
		t.Fatal(err)
	}
	pre := map[string]bool{}
	for _, key := range c.putLog() {
		pre[key] = true
	}
	// Forget the presence cache: the HEAD lookups must find d and e.
	presence = newFakePresence()
	u = newTestUploader(t, testConfig(s.dir), c, s, presence, nil)
	before := len(c.putLog())
	headsBefore := map[string]int{}
	for x, path := range p {
		headsBefore[x] = c.headsOf(keyOf(t, s.dir, path))
	}
	res, err := u.Upload(context.Background(), p["a"])
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 3 || res.Skipped != 2 {
		t.Errorf("result %+v, want 3 uploaded, 2 skipped", res)
	}
	for _, key := range c.putLog()[before:] {
		if pre[key] {
			t.Errorf("%s put again", key)
		}
	}
	for _, x := range []string{"a", "b", "c", "d", "e"} {
		key := keyOf(t, s.dir, p[x])
		if n := c.headsOf(key) - headsBefore[x]; n != 1 {
			t.Errorf("%s looked up %d times, want 1", x, n)
		}
		if !presence.isMarked(key) {
			t.Errorf("%s not marked present", x)
		}
	}
	checkCache(t, c, s.dir, nil)

	// Everything is now in the cache and fresh in the presence cache: the
	// root's own fresh entry stands for its closure, so there is neither a
	// metadata query nor a lookup.
	heads, queries := c.totalHeads(), s.calls
	res, err = u.Upload(context.Background(), p["a"])
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 0 || res.Skipped != 1 || c.totalHeads() != heads || s.calls != queries {
		t.Errorf("result %+v, %d lookups, %d queries; want the root skipped without either", res, c.totalHeads()-heads, s.calls-queries)
	}
	// Without the root's entry, the closure is checked from the presence
	// cache, still without lookups.
	presence.ForgetPresent([]string{keyOf(t, s.dir, p["a"])})
	res, err = u.Upload(context.Background(), p["a"])
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 0 || res.Skipped != 5 || c.totalHeads() != heads+1 {
		t.Errorf("result %+v, %d lookups; want 5 skipped after looking up only the root", res, c.totalHeads()-heads)
	}
	heads = c.totalHeads()

	// Expired entries are looked up again.
	presence.advance(2 * time.Hour)
	res, err = u.Upload(context.Background(), p["a"])
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped != 5 || c.totalHeads() != heads+5 {
		t.Errorf("result %+v, %d lookups; want 5 skipped after 5 lookups", res, c.totalHeads()-heads)
	}
}

func TestUploadPresenceDisabled(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	presence := newFakePresence()
	cfg := testConfig(s.dir)
	cfg.PresenceTTL = 0
	u := newTestUploader(t, cfg, c, s, presence, nil)
	for range 2 {
		if _, err := u.Upload(context.Background(), p["a"]); err != nil {
			t.Fatal(err)
		}
	}
	if presence.queries != 0 || len(presence.marked) != 0 {
		t.Errorf("disabled presence cache used: %d queries, %d marks", presence.queries, len(presence.marked))
	}
	if n := c.totalHeads(); n != 10 {
		t.Errorf("%d lookups, want 10", n)
	}
}

// A presence entry is trusted only for paths nothing being published refers
// to; entries that a published narinfo relies on are confirmed, and a stale
// one is forgotten and its path uploaded.
func TestUploadStalePresence(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	presence := newFakePresence()
	for _, x := range []string{"b", "c", "d", "e"} {
		presence.MarkPresent([]string{keyOf(t, s.dir, p[x])})
	}
	// Only b and c are really in the cache; d and e were removed from it
	// (or their marks are wrong).
	warm := newTestUploader(t, testConfig(s.dir), c, s, nil, nil)
	if _, err := warm.Upload(context.Background(), p["b"]); err != nil {
		t.Fatal(err)
	}
	if _, err := warm.Upload(context.Background(), p["c"]); err != nil {
		t.Fatal(err)
	}
	for _, x := range []string{"d", "e"} {
		key := keyOf(t, s.dir, p[x])
		c.mu.Lock()
		delete(c.objects, key)
		c.mu.Unlock()
	}
	pre := map[string]bool{keyOf(t, s.dir, p["b"]): true, keyOf(t, s.dir, p["c"]): true}
	before := len(c.putLog())
	headsBefore := map[string]int{}
	for x, path := range p {
		headsBefore[x] = c.headsOf(keyOf(t, s.dir, path))
	}

	u := newTestUploader(t, testConfig(s.dir), c, s, presence, nil)
	res, err := u.Upload(context.Background(), p["a"])
	if err != nil {
		t.Fatal(err)
	}
	// a is missing; b and c (a's references) are confirmed present; d and e
	// are not looked up: nothing being published refers to them.
	if res.Uploaded != 1 || res.Skipped != 4 {
		t.Errorf("result %+v, want 1 uploaded", res)
	}
	for x, want := range map[string]int{"a": 1, "b": 1, "c": 1, "d": 0, "e": 0} {
		if got := c.headsOf(keyOf(t, s.dir, p[x])) - headsBefore[x]; got != want {
			t.Errorf("%s looked up %d times, want %d", x, got, want)
		}
	}

	// Now b is missing in the cache too but fresh in the presence cache:
	// publishing a again must confirm b, find it (and then d, e) missing,
	// and upload them before a's narinfo.
	for _, x := range []string{"a", "b"} {
		c.mu.Lock()
		delete(c.objects, keyOf(t, s.dir, p[x]))
		c.mu.Unlock()
	}
	presence.ForgetPresent([]string{keyOf(t, s.dir, p["a"])})
	presence.MarkPresent([]string{keyOf(t, s.dir, p["d"]), keyOf(t, s.dir, p["e"])})
	before = len(c.putLog())
	res, err = u.Upload(context.Background(), p["a"])
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 4 || res.Skipped != 1 {
		t.Errorf("result %+v, want 4 uploaded (a, b, d, e), 1 skipped (c)", res)
	}
	for _, x := range []string{"b", "d", "e"} {
		key := keyOf(t, s.dir, p[x])
		if !slices.Contains(presence.forgot, key) {
			t.Errorf("stale entry of %s not forgotten", x)
		}
		if _, ok := c.object(key); !ok {
			t.Errorf("%s not uploaded", x)
		}
	}
	log := c.putLog()[before:]
	if ia, ib := indexOf(log, keyOf(t, s.dir, p["a"])), indexOf(log, keyOf(t, s.dir, p["b"])); ib < 0 || ia < ib {
		t.Errorf("a's narinfo at %d, b's at %d in %v", ia, ib, log)
	}
	checkCache(t, c, s.dir, pre)
}
