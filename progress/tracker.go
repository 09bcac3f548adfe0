package progress

import "sync"

// Tracker adds up what an uploader reports about its roots into
// Snapshots. Its Planned and Finished methods are those of
// uploader.Observer, so a *Tracker can be one. It is safe for concurrent
// use.
type Tracker struct {
	mu       sync.Mutex
	plans    map[string]plan  // by root
	wanted   map[string]int   // path -> number of plans it is missing in
	finished map[string]error // outcome of wanted paths that finished
	// streamed is the most NAR bytes seen streamed for a wanted path, so
	// that a NAR whose stream ended, while its narinfo is being written,
	// still counts.
	streamed map[string]int64
	follow   func(root string) bool // nil: every root
}

type plan struct {
	closure []string
	missing map[string]uint64
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{plans: map[string]plan{}, wanted: map[string]int{}, finished: map[string]error{}, streamed: map[string]int64{}}
}

// SetFollow restricts the Tracker to the roots for which follow returns
// true: Follows reports it, and an uploader that asks Follows plans only
// those, so that a daemon keeps (and computes) closures only for the roots
// someone watches. Call it before the Tracker is shared; nil follows every
// root.
func (t *Tracker) SetFollow(follow func(root string) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.follow = follow
}

// Follows reports whether root's plan is wanted (see SetFollow).
func (t *Tracker) Follows(root string) bool {
	t.mu.Lock()
	follow := t.follow
	t.mu.Unlock()
	return follow == nil || follow(root)
}

// Planned records root's closure and the NAR sizes of the members to be
// uploaded. A root planned again (a retry) replaces its earlier plan, and
// the outcomes of its missing paths are forgotten.
func (t *Tracker) Planned(root string, closure []string, missing map[string]uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forget(root)
	t.plans[root] = plan{closure: closure, missing: missing}
	for p := range missing {
		t.wanted[p]++
		delete(t.finished, p)
		delete(t.streamed, p)
	}
}

// Finished records the outcome of one uploaded path. Paths no plan
// wants are ignored, so a Tracker following only some roots stays small.
func (t *Tracker) Finished(path string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.wanted[path] > 0 {
		t.finished[path] = err
	}
}

// Forget drops root's plan and whatever only it wanted.
func (t *Tracker) Forget(root string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forget(root)
}

func (t *Tracker) forget(root string) {
	old, ok := t.plans[root]
	if !ok {
		return
	}
	delete(t.plans, root)
	for p := range old.missing {
		if t.wanted[p]--; t.wanted[p] <= 0 {
			delete(t.wanted, p)
			delete(t.finished, p)
			delete(t.streamed, p)
		}
	}
}

// Has reports whether root has been planned.
func (t *Tracker) Has(root string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.plans[root]
	return ok
}

// Snapshot adds up the union of the closures of roots (every planned root
// when roots is nil; roots not planned are left out). active are the NARs
// being uploaded now: those of paths to upload count towards BytesDone
// (and keep counting after their stream ends, while their narinfo is
// written), and the largest is Largest.
func (t *Tracker) Snapshot(roots []string, active []Transfer) Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	if roots == nil {
		for r := range t.plans {
			roots = append(roots, r)
		}
	}
	closure := map[string]bool{}
	missing := map[string]uint64{}
	for _, r := range roots {
		pl, ok := t.plans[r]
		if !ok {
			continue
		}
		for _, p := range pl.closure {
			closure[p] = true
		}
		for p, size := range pl.missing {
			missing[p] = size
		}
	}
	for _, a := range active {
		if _, want := missing[a.Path]; want {
			t.streamed[a.Path] = max(t.streamed[a.Path], a.Done)
		}
	}
	var s Snapshot
	s.PathsTotal = len(closure)
	s.Present = len(closure) - len(missing)
	for p, size := range missing {
		s.BytesTotal += int64(size)
		err, done := t.finished[p]
		switch {
		case !done:
			s.BytesDone += t.streamed[p]
		case err == nil:
			s.Uploaded++
			s.BytesDone += int64(size)
		default:
			s.Failed++
		}
	}
	for _, a := range active {
		if _, want := missing[a.Path]; !want {
			continue
		}
		if _, done := t.finished[a.Path]; !done && a.Size > s.Largest.Size {
			s.Largest = a
		}
	}
	return s
}
