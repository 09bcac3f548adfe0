package uploader

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

func TestUploadParallel(t *testing.T) {
	const conc = 3
	s := newFakeStore(t)
	var leaves []string
	for i := range 7 {
		leaves = append(leaves, s.add(t, fmt.Sprintf("leaf%d", i), map[string]string{"f": strings.Repeat("x", smallNARMax+i)}))
	}
	root := s.add(t, "root", map[string]string{"f": strings.Repeat("r", smallNARMax)}, leaves...) // streamed too
	c := newFakeCache()
	cfg := testConfig(s.dir)
	cfg.Concurrency = conc
	u := newTestUploader(t, cfg, c, s, nil, nil)

	gate := make(chan struct{})
	var openGate sync.Once
	var active, maxActive int
	var activeSeen []Transfer
	c.beforePut = func(key string) {
		if !strings.HasPrefix(key, "nar/") {
			return
		}
		c.mu.Lock()
		active++
		maxActive = max(maxActive, active)
		if active == conc {
			// Give a broken limit the chance to let a fourth stream in.
			openGate.Do(func() {
				go func() {
					time.Sleep(100 * time.Millisecond)
					activeSeen = u.Active()
					close(gate)
				}()
			})
		}
		c.mu.Unlock()
		select {
		case <-gate:
		case <-time.After(5 * time.Second):
		}
		c.mu.Lock()
		active--
		c.mu.Unlock()
	}
	if _, err := u.Upload(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	if maxActive != conc {
		t.Errorf("%d NARs streamed at once, want %d", maxActive, conc)
	}
	if len(activeSeen) != conc {
		t.Errorf("Active() listed %d transfers while %d streamed", len(activeSeen), conc)
	}
	for _, tr := range activeSeen {
		if s.info(tr.Path) == nil || tr.NarSize != s.info(tr.Path).NarSize || tr.Started.IsZero() {
			t.Errorf("transfer %+v", tr)
		}
	}
	if n := len(u.Active()); n != 0 {
		t.Errorf("%d transfers listed after Upload returned", n)
	}
	checkCache(t, c, s.dir, nil)
}

func TestUploadSharedDependency(t *testing.T) {
	s := newFakeStore(t)
	shared := s.add(t, "shared", map[string]string{"big": strings.Repeat("s", 200_000)})
	r1 := s.add(t, "r1", map[string]string{"f": "1"}, shared)
	r2 := s.add(t, "r2", map[string]string{"f": "2"}, shared)
	c := newFakeCache()
	u := newTestUploader(t, testConfig(s.dir), c, s, nil, nil)

	sharedNAR := narKey(s.info(shared).NarHash, ".zst")
	started, release := make(chan struct{}), make(chan struct{})
	c.beforePut = func(key string) {
		if key == sharedNAR {
			close(started)
			<-release
		}
	}
	type outcome struct {
		res Result
		err error
	}
	done1, done2 := make(chan outcome), make(chan outcome)
	go func() { res, err := u.Upload(context.Background(), r1); done1 <- outcome{res, err} }()
	<-started
	go func() { res, err := u.Upload(context.Background(), r2); done2 <- outcome{res, err} }()
	// Both calls and both referrers hold the shared flight before it may
	// finish.
	waitFor(t, func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		f := u.flights[shared]
		return f != nil && f.refs == 4
	})
	close(release)
	o1, o2 := <-done1, <-done2
	if o1.err != nil || o2.err != nil {
		t.Fatal(o1.err, o2.err)
	}
	if n := c.attemptsOf(sharedNAR); n != 1 {
		t.Errorf("shared NAR uploaded %d times", n)
	}
	if n := c.attemptsOf(keyOf(t, s.dir, shared)); n != 1 {
		t.Errorf("shared narinfo uploaded %d times", n)
	}
	if o1.res.Uploaded+o2.res.Uploaded != 3 || o1.res.Uploaded+o1.res.Skipped != 2 || o2.res.Uploaded+o2.res.Skipped != 2 {
		t.Errorf("results %+v and %+v; want 3 uploads in all", o1.res, o2.res)
	}
	checkCache(t, c, s.dir, nil)
}

func TestUploadSignatures(t *testing.T) {
	ours, err := nix.GenerateKey("cache.example.org-1")
	if err != nil {
		t.Fatal(err)
	}
	upstream, _ := nix.GenerateKey("upstream-1")
	stranger, _ := nix.GenerateKey("cache.example.org-1")

	s := newFakeStore(t)
	dep := s.add(t, "dep", map[string]string{"f": "dep"})
	x := s.add(t, "x", map[string]string{"f": "x"}, dep, "self")
	// The store already holds an upstream signature for x.
	info := s.info(x)
	ni := &nix.NarInfo{StorePath: x, NarHash: info.NarHash, NarSize: info.NarSize,
		References: []string{filepath.Base(dep), filepath.Base(x)}}
	fp, err := ni.Fingerprint(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	info.Sigs = []string{upstream.Sign(fp)}

	for _, withKey := range []bool{true, false} {
		t.Run(fmt.Sprintf("key=%v", withKey), func(t *testing.T) {
			c := newFakeCache()
			key := ours
			if !withKey {
				key = nil
			}
			u := newTestUploader(t, testConfig(s.dir), c, s, nil, key)
			if _, err := u.Upload(context.Background(), x); err != nil {
				t.Fatal(err)
			}
			got := checkCache(t, c, s.dir, nil)[keyOf(t, s.dir, x)]
			fp, err := got.Fingerprint(s.dir)
			if err != nil {
				t.Fatal(err)
			}
			var byUs, byUpstream int
			for _, sig := range got.Sigs {
				if ours.Public().Verify(fp, sig) {
					byUs++
				}
				if upstream.Public().Verify(fp, sig) {
					byUpstream++
				}
				if stranger.Public().Verify(fp, sig) {
					t.Errorf("signature %s verifies under an unrelated key of the same name", sig)
				}
			}
			wantUs := 0
			if withKey {
				wantUs = 1
			}
			if byUs != wantUs || byUpstream != 1 || len(got.Sigs) != wantUs+1 {
				t.Errorf("sigs %v: %d ours, %d upstream", got.Sigs, byUs, byUpstream)
			}
			if withKey {
				dni := checkCache(t, c, s.dir, nil)[keyOf(t, s.dir, dep)]
				dfp, err := dni.Fingerprint(s.dir)
				if err != nil {
					t.Fatal(err)
				}
				if len(dni.Sigs) != 1 || !ours.Public().Verify(dfp, dni.Sigs[0]) {
					t.Errorf("dep sigs %v do not verify", dni.Sigs)
				}
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Small NARs are sent without holding a streaming slot: with Concurrency 1,
// all of a closure's small NARs are in flight at once, so a slow cache
// costs one round trip for them, not one per path.
func TestSmallNARsDoNotWaitForStreamingSlots(t *testing.T) {
	s := newFakeStore(t)
	const n = 12
	var leaves []string
	for i := range n {
		leaves = append(leaves, s.add(t, fmt.Sprintf("small%d", i), map[string]string{"f": strings.Repeat("s", 100+i)}))
	}
	root := s.add(t, "root", map[string]string{"f": "r"}, leaves...)
	c := newFakeCache()
	cfg := testConfig(s.dir)
	cfg.Concurrency = 1
	u := newTestUploader(t, cfg, c, s, nil, nil)
	all := make(chan struct{})
	var once sync.Once
	var active, maxActive int
	c.beforePut = func(key string) {
		if !strings.HasPrefix(key, "nar/") {
			return
		}
		c.mu.Lock()
		active++
		maxActive = max(maxActive, active)
		if active == n+1 {
			once.Do(func() { close(all) })
		}
		c.mu.Unlock()
		select {
		case <-all:
		case <-time.After(2 * time.Second):
		}
		c.mu.Lock()
		active--
		c.mu.Unlock()
	}
	res, err := u.Upload(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if maxActive != n+1 || res.Uploaded != n+1 {
		t.Errorf("%d small NARs in flight at once, %d uploaded; want all %d at once", maxActive, res.Uploaded, n+1)
	}
	checkCache(t, c, s.dir, nil)
}

// Once a NAR is compressed and read by the cache, its streaming slot goes to
// the next NAR while its request is still on the wire: with Concurrency 1,
// the next NAR starts while the previous one's Put has not returned.
func TestStreamingSlotHandedOverWhileSending(t *testing.T) {
	s := newFakeStore(t)
	a := s.add(t, "big-a", map[string]string{"f": strings.Repeat("a", smallNARMax+1)})
	b := s.add(t, "big-b", map[string]string{"f": strings.Repeat("b", smallNARMax+1)})
	root := s.add(t, "root", map[string]string{"f": strings.Repeat("r", smallNARMax+1)}, a, b)
	c := newFakeCache()
	cfg := testConfig(s.dir)
	cfg.Concurrency = 1
	u := newTestUploader(t, cfg, c, s, nil, nil)
	var started, overlapped atomic.Int32
	var mu sync.Mutex
	order := map[string]int32{} // NAR key -> its place in the order of starts
	c.beforePut = func(key string) {
		if strings.HasPrefix(key, "nar/") {
			mu.Lock()
			order[key] = started.Add(1)
			mu.Unlock()
		}
	}
	c.afterRead = func(key string) {
		if !strings.HasPrefix(key, "nar/") {
			return
		}
		mu.Lock()
		n := order[key]
		mu.Unlock()
		if n == 3 {
			return // the last NAR: nothing to wait for
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if started.Load() > n {
				overlapped.Add(1)
				return
			}
		}
	}
	if _, err := u.Upload(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	if got := overlapped.Load(); got != 2 {
		t.Errorf("%d of the first 2 NARs saw the next one start while still sending, want 2", got)
	}
	checkCache(t, c, s.dir, nil)
}
