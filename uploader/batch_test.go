package uploader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type batchOutcome struct {
	res Result
	err error
}

func uploadBatch(t *testing.T, u *Uploader, roots []string) map[string]batchOutcome {
	t.Helper()
	var mu sync.Mutex
	got := make(map[string]batchOutcome)
	u.UploadBatch(context.Background(), roots, func(root string, res Result, err error) {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := got[root]; dup {
			t.Errorf("done called twice for %s", root)
		}
		got[root] = batchOutcome{res, err}
	})
	return got
}

// A batch of roots sharing dependencies costs one metadata query, uploads
// each path once, and counts each upload for exactly one root.
func TestUploadBatchSharesWork(t *testing.T) {
	s := newFakeStore(t)
	lib := s.add(t, "lib", map[string]string{"f": strings.Repeat("l", 50_000)})
	a := s.add(t, "a", map[string]string{"f": "a"}, lib)
	b := s.add(t, "b", map[string]string{"f": "b"}, lib)
	c := s.add(t, "c", map[string]string{"f": "c"})
	cache := newFakeCache()
	u := newTestUploader(t, testConfig(s.dir), cache, s, nil, nil)

	got := uploadBatch(t, u, []string{a, b, c, a})
	if len(got) != 3 {
		t.Fatalf("done called for %d roots, want 3: %v", len(got), got)
	}
	total := 0
	for root, o := range got {
		if o.err != nil {
			t.Fatalf("%s: %v", root, o.err)
		}
		total += o.res.Uploaded
	}
	if total != 4 {
		t.Errorf("uploads counted %d times over roots, want 4", total)
	}
	if got[a].res.Uploaded+got[a].res.Skipped != 2 || got[c].res.Uploaded != 1 {
		t.Errorf("results %+v", got)
	}
	if s.calls != 1 {
		t.Errorf("%d metadata queries for one batch, want 1", s.calls)
	}
	if n := cache.attemptsOf(keyOf(t, s.dir, lib)); n != 1 {
		t.Errorf("shared dependency's narinfo put %d times", n)
	}
	checkCache(t, cache, s.dir, nil)
}

// A root garbage-collected while queued fails alone, with ErrPathGone; the
// rest of the batch is uploaded.
func TestUploadBatchGoneRootFailsAlone(t *testing.T) {
	s := newFakeStore(t)
	a := s.add(t, "a", map[string]string{"f": "a"})
	gone := s.add(t, "gone", map[string]string{"f": "g"})
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	unregistered := filepath.Join(s.dir, hashPart("unregistered")+"-unregistered")
	if err := os.WriteFile(unregistered, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := newFakeCache()
	u := newTestUploader(t, testConfig(s.dir), cache, s, nil, nil)
	got := uploadBatch(t, u, []string{a, gone, unregistered})
	if o := got[a]; o.err != nil || o.res.Uploaded != 1 {
		t.Errorf("live root: %+v", o)
	}
	for _, p := range []string{gone, unregistered} {
		if o := got[p]; !errors.Is(o.err, ErrPathGone) {
			t.Errorf("%s: err %v, want ErrPathGone", p, o.err)
		}
	}
	checkCache(t, cache, s.dir, nil)
}

// A lookup that found a path missing just before a concurrent call
// published it must not upload the path a second time.
func TestNoSecondUploadAfterStaleLookup(t *testing.T) {
	s := newFakeStore(t)
	b := s.add(t, "b", map[string]string{"f": "b"})
	a := s.add(t, "a", map[string]string{"f": "a"}, b)
	cache := newFakeCache()
	u := newTestUploader(t, testConfig(s.dir), cache, s, nil, nil)
	bKey := keyOf(t, s.dir, b)

	// a's lookup of b answers "missing", then waits until b's own upload
	// has published it before the answer is used.
	var once sync.Once
	published := make(chan struct{})
	aLooked := make(chan struct{})
	cache.afterHas = func(key string) {
		if key != bKey {
			return
		}
		once.Do(func() {
			close(aLooked)
			<-published
		})
	}
	errs := make(chan error, 1)
	go func() {
		_, err := u.Upload(context.Background(), a)
		errs <- err
	}()
	<-aLooked
	cache.mu.Lock()
	cache.afterHas = nil
	cache.mu.Unlock()
	if _, err := u.Upload(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	close(published)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if n := cache.attemptsOf(bKey); n != 1 {
		t.Errorf("b's narinfo put %d times, want once", n)
	}
	checkCache(t, cache, s.dir, nil)
}

func TestReferencesFirst(t *testing.T) {
	s := newFakeStore(t)
	a := s.add(t, "a", map[string]string{"f": "a"})
	b := s.add(t, "b", map[string]string{"f": "b"}, a)
	c := s.add(t, "c", map[string]string{"f": "c"}, b, a)
	d := s.add(t, "d", map[string]string{"f": "d"})
	infos, err := s.PathInfo(context.Background(), []string{c, d}, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPlan(s.dir, []string{c, d}, infos)
	if err != nil {
		t.Fatal(err)
	}
	got := p.referencesFirst([]string{c, d, b, a})
	pos := map[string]int{}
	for i, path := range got {
		pos[path] = i
	}
	if len(got) != 4 || pos[a] > pos[b] || pos[b] > pos[c] || pos[d] > pos[b] {
		t.Errorf("referencesFirst = %v, want a and d (no references) before b before c", got)
	}
}
