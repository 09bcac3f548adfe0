package uploader

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	planned  map[string][]string
	missing  map[string]map[string]uint64
	finished map[string]error
	order    []string // "plan ROOT" and "done PATH", in call order
}

func newRecorder() *recorder {
	return &recorder{planned: map[string][]string{}, missing: map[string]map[string]uint64{}, finished: map[string]error{}}
}

func (r *recorder) Planned(root string, closure []string, missing map[string]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.planned[root] = closure
	r.missing[root] = missing
	r.order = append(r.order, "plan "+root)
}

func (r *recorder) Finished(path string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.finished[path]; dup {
		panic("finished twice: " + path)
	}
	r.finished[path] = err
	r.order = append(r.order, "done "+path)
}

func TestObserverSeesPlanAndEveryFinish(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	// d and e are in the cache already: only a, b and c are uploaded.
	pre := newTestUploader(t, testConfig(s.dir), c, s, nil, nil)
	if _, err := pre.Upload(context.Background(), p["d"]); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	cfg := testConfig(s.dir)
	cfg.Observer = rec
	u := newTestUploader(t, cfg, c, s, nil, nil)
	if _, err := u.Upload(context.Background(), p["a"]); err != nil {
		t.Fatal(err)
	}
	wantClosure := []string{p["a"], p["b"], p["c"], p["d"], p["e"]}
	slices.Sort(wantClosure)
	if got := rec.planned[p["a"]]; !slices.Equal(got, wantClosure) {
		t.Errorf("closure %v, want %v", got, wantClosure)
	}
	wantMissing := map[string]uint64{}
	for _, x := range []string{"a", "b", "c"} {
		wantMissing[p[x]] = s.info(p[x]).NarSize
	}
	if got := rec.missing[p["a"]]; !maps.Equal(got, wantMissing) {
		t.Errorf("missing %v, want %v", got, wantMissing)
	}
	if len(rec.finished) != 3 {
		t.Errorf("finished %v, want a, b, c", rec.finished)
	}
	for path, err := range rec.finished {
		if err != nil || wantMissing[path] == 0 {
			t.Errorf("finished %s: %v", path, err)
		}
	}
	if rec.order[0] != "plan "+p["a"] {
		t.Errorf("first call %q, want the plan", rec.order[0])
	}
}

func TestObserverSeesFailures(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	boom := errors.New("boom")
	c.failPut[narKey(s.info(p["d"]).NarHash, ".zst")] = boom
	rec := newRecorder()
	cfg := testConfig(s.dir)
	cfg.Observer = rec
	u := newTestUploader(t, cfg, c, s, nil, nil)
	if _, err := u.Upload(context.Background(), p["a"]); !errors.Is(err, boom) {
		t.Fatalf("Upload: %v, want boom", err)
	}
	// d failed, and a, b, c, which refer to it, were not published; e was.
	for _, x := range []string{"a", "b", "c", "d"} {
		if err, ok := rec.finished[p[x]]; !ok || !errors.Is(err, boom) {
			t.Errorf("%s finished with %v (reported: %v), want boom", x, err, ok)
		}
	}
	if err, ok := rec.finished[p["e"]]; !ok || err != nil {
		t.Errorf("e finished with %v (reported: %v), want success", err, ok)
	}
}

func TestObserverFreshRoot(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	pres := newFakePresence()
	rec := newRecorder()
	cfg := testConfig(s.dir)
	cfg.Observer = rec
	u := newTestUploader(t, cfg, c, s, pres, nil)
	if _, err := u.Upload(context.Background(), p["a"]); err != nil {
		t.Fatal(err)
	}
	rec2 := newRecorder()
	cfg.Observer = rec2
	u2 := newTestUploader(t, cfg, c, s, pres, nil)
	if _, err := u2.Upload(context.Background(), p["a"]); err != nil {
		t.Fatal(err)
	}
	if got := rec2.planned[p["a"]]; !slices.Equal(got, []string{p["a"]}) || len(rec2.missing[p["a"]]) != 0 || len(rec2.finished) != 0 {
		t.Errorf("fresh root: planned %v, missing %v, finished %v; want the root alone, present", got, rec2.missing[p["a"]], rec2.finished)
	}
}

// followOnly is a recorder that follows one root.
type followOnly struct {
	*recorder
	root string
}

func (f followOnly) Follows(root string) bool { return root == f.root }

func TestObserverFollows(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	rec := newRecorder()
	cfg := testConfig(s.dir)
	cfg.Observer = followOnly{rec, p["b"]}
	u := newTestUploader(t, cfg, newFakeCache(), s, nil, nil)
	u.UploadBatch(context.Background(), []string{p["a"], p["b"]}, func(string, Result, error) {})
	if _, ok := rec.planned[p["a"]]; ok {
		t.Error("a, not followed, was planned")
	}
	if got := rec.planned[p["b"]]; len(got) != 3 {
		t.Errorf("b planned with closure %v, want b, d, e", got)
	}
	if len(rec.finished) != 5 {
		t.Errorf("%d paths reported finished, want all 5", len(rec.finished))
	}
}
