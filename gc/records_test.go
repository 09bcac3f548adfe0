package gc

import (
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

// memPresence is an in-memory presence cache.
type memPresence struct {
	mu     sync.Mutex
	marked map[string]time.Time
	now    func() time.Time
}

func (p *memPresence) PresentFresh(keys []string, ttl time.Duration) (map[string]bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]bool{}
	for _, k := range keys {
		if at, ok := p.marked[k]; ok && p.now().Sub(at) <= ttl {
			out[k] = true
		}
	}
	return out, nil
}

func (p *memPresence) MarkPresent(keys []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		p.marked[k] = p.now()
	}
	return nil
}

func (p *memPresence) ForgetPresent(keys []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		delete(p.marked, k)
	}
	return nil
}

// Re-asserting costs one PUT per root per day, and no request at all once
// done today; the record is under the day's key.
func TestReasserter(t *testing.T) {
	ctx := t.Context()
	b := newBucket(t)
	day := time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)
	now := day
	clock := func() time.Time { return now }
	c := &counting{Cache: b.cache}
	r := NewReasserter(c, &memPresence{marked: map[string]time.Time{}, now: clock}, clock)
	sp := mustPath(t, pathOf("app"))
	for range 3 {
		if err := r.Reassert(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.n.Load(); n != 1 {
		t.Errorf("3 re-assertions on one day sent %d requests, want 1", n)
	}
	if got := b.read("nixs3q/roots/2026-03-01/" + sp.HashPart); got != sp.String()+"\n" {
		t.Errorf("record holds %q", got)
	}
	now = day.Add(2 * time.Hour) // the next UTC day
	if err := r.Reassert(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if n := c.n.Load(); n != 2 {
		t.Errorf("after a new day: %d requests, want 2", n)
	}
	var roots []Root
	if err := ListRoots(ctx, b.cache, func(r Root) error { roots = append(roots, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(roots) != 2 || roots[0].HashPart != sp.HashPart || !roots[1].Until().Equal(time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("roots %+v", roots)
	}
}

func TestPins(t *testing.T) {
	ctx := t.Context()
	b := newBucket(t)
	a, z := pathOf("a"), pathOf("z")
	if err := PutPin(ctx, b.cache, nix.DefaultStoreDir, Pin{Name: "prod", Paths: []string{z, a, a}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Pin{
		{Name: "../x", Paths: []string{a}},
		{Name: "", Paths: []string{a}},
		{Name: "ok", Paths: []string{"/tmp/not-a-store-path"}},
		{Name: "ok"},
	} {
		if err := PutPin(ctx, b.cache, nix.DefaultStoreDir, bad); err == nil {
			t.Errorf("pin %+v accepted", bad)
		}
	}
	pins, err := ListPins(ctx, b.cache, nix.DefaultStoreDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) != 1 || pins[0].Name != "prod" || len(pins[0].Paths) != 2 || pins[0].Paths[0] > pins[0].Paths[1] {
		t.Fatalf("pins %+v", pins)
	}
	if err := DeletePin(ctx, b.cache, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unpin of a missing pin: %v", err)
	}
	if err := DeletePin(ctx, b.cache, "prod"); err != nil {
		t.Fatal(err)
	}
	if pins, _ := ListPins(ctx, b.cache, nix.DefaultStoreDir); len(pins) != 0 {
		t.Errorf("pins after unpin: %+v", pins)
	}
	// A pin gc cannot read stops it rather than collect what it holds.
	b.put(PinsPrefix+"broken", "not a store path\n", time.Now())
	if _, err := Run(ctx, b.cache, testConfig(time.Now().Add(-time.Hour)), nil); err == nil {
		t.Error("gc ran beside an unreadable pin")
	}
}
