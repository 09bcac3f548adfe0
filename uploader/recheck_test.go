package uploader

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/nixs3q/nixs3q/nix"
)

// A reference found present at the lookup and deleted (by gc) while the
// referrer's NAR uploads is looked up again before the referrer's narinfo
// is written: nothing is published, the attempt fails with ErrVanished,
// and the next attempt uploads the reference again.
func TestRecheckVanishedReference(t *testing.T) {
	defer func() { recheckAfter = RecheckAfter }()
	recheckAfter = 0
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	presence := newFakePresence()
	u := newTestUploader(t, testConfig(s.dir), c, s, presence, nil)
	ctx := context.Background()
	if _, err := u.Upload(ctx, p["b"]); err != nil { // b, d, e
		t.Fatal(err)
	}
	dKey := keyOf(t, s.dir, p["d"])
	var once sync.Once
	c.beforePut = func(key string) {
		if strings.HasPrefix(key, "nar/") {
			once.Do(func() { _ = c.Delete(ctx, dKey) })
		}
	}
	_, err := u.Upload(ctx, p["a"])
	if !errors.Is(err, ErrVanished) {
		t.Fatalf("upload while a reference vanished: %v, want ErrVanished", err)
	}
	if c := Classify(err); c.Permanent || c.Code != "vanished" {
		t.Errorf("Classify = %+v, want a transient \"vanished\"", c)
	}
	if _, ok := c.object(keyOf(t, s.dir, p["c"])); ok {
		t.Error("c, which references the vanished d, was published")
	}
	if _, ok := c.object(keyOf(t, s.dir, p["a"])); ok {
		t.Error("a was published")
	}
	if presence.isMarked(dKey) {
		t.Error("the vanished reference is still in the presence cache")
	}
	c.beforePut = nil
	if _, err := u.Upload(ctx, p["a"]); err != nil {
		t.Fatal(err)
	}
	checkCache(t, c, s.dir, nil)
}

// fakeRoots records re-assertions.
type fakeRoots struct {
	mu    sync.Mutex
	roots []string
}

func (f *fakeRoots) Reassert(_ context.Context, sp nix.StorePath) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roots = append(f.roots, sp.String())
	return nil
}

// A root already in the cache is re-asserted, whether the presence cache
// or a lookup says so; a root uploaded now, or by the same uploader less
// than freshlyPublished ago, is not.
func TestReassertRoots(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	u := newTestUploader(t, testConfig(s.dir), c, s, newFakePresence(), nil)
	roots := &fakeRoots{}
	u.SetRoots(roots)
	ctx := context.Background()
	for range 2 {
		if _, err := u.Upload(ctx, p["a"]); err != nil {
			t.Fatal(err)
		}
	}
	if len(roots.roots) != 0 {
		t.Fatalf("the uploader that just published a re-asserted %v", roots.roots)
	}
	presence := newFakePresence()
	u2 := newTestUploader(t, testConfig(s.dir), c, s, presence, nil)
	u2.SetRoots(roots)
	if _, err := u2.Upload(ctx, p["b"]); err != nil { // found by a lookup
		t.Fatal(err)
	}
	presence.MarkPresent([]string{keyOf(t, s.dir, p["a"])})
	if _, err := u2.Upload(ctx, p["a"]); err != nil { // fresh in the presence cache
		t.Fatal(err)
	}
	if want := []string{p["b"], p["a"]}; strings.Join(roots.roots, " ") != strings.Join(want, " ") {
		t.Errorf("re-asserted %v, want %v", roots.roots, want)
	}
}
