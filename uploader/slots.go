package uploader

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

type urgentKey struct{}

// Urgent returns a context under which Upload and UploadBatch calls are
// urgent: someone waits for them. Their NARs, and those of the references
// they need, take the next free streaming slot before any other upload
// waiting for one (but one slot in four goes to the longest waiting upload
// while urgent ones pass it); uploads already streaming are never
// interrupted. An
// urgent call that joins an upload another call started makes it urgent
// too.
func Urgent(ctx context.Context) context.Context {
	return context.WithValue(ctx, urgentKey{}, true)
}

// IsUrgent reports whether ctx was made by Urgent.
func IsUrgent(ctx context.Context) bool {
	v, _ := ctx.Value(urgentKey{}).(bool)
	return v
}

// slots hands out the Concurrency NAR streaming slots: in the order asked
// for, except that a waiter whose flight is urgent goes first; but while
// others wait longer, every fairTurn-th slot goes to the longest waiting,
// so that a steady stream of urgent uploads cannot starve the rest. It is
// safe for concurrent use.
type slots struct {
	mu      sync.Mutex
	free    int
	waiters []*slotWaiter // in arrival order
	passed  int           // slots given to urgent waiters past a longer waiting one
}

// fairTurn: one slot in fairTurn goes to the longest waiting when urgent
// waiters would otherwise pass it.
const fairTurn = 4

type slotWaiter struct {
	ready   chan struct{} // closed once the slot is granted
	urgent  *atomic.Bool  // read when a slot frees up, so it may change while waiting
	granted bool          // guarded by slots.mu
}

func newSlots(n int) *slots { return &slots{free: n} }

// wait asks for a slot. The slot is the caller's once w.ready is closed;
// it must then be given back with release, or with cancel if the caller
// gives up first.
func (s *slots) wait(urgent *atomic.Bool) *slotWaiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &slotWaiter{ready: make(chan struct{}), urgent: urgent}
	if s.free > 0 {
		s.free--
		w.granted = true
		close(w.ready)
		return w
	}
	s.waiters = append(s.waiters, w)
	return w
}

// cancel withdraws w; a slot granted to it meanwhile is passed on.
func (s *slots) cancel(w *slotWaiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.granted {
		s.grantLocked()
		return
	}
	if i := slices.Index(s.waiters, w); i >= 0 {
		s.waiters = slices.Delete(s.waiters, i, i+1)
	}
}

// release gives a slot back, to the first urgent waiter if any (but see
// fairTurn), else to the longest waiting one.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grantLocked()
}

func (s *slots) grantLocked() {
	if len(s.waiters) == 0 {
		s.free++
		return
	}
	i := slices.IndexFunc(s.waiters, func(w *slotWaiter) bool { return w.urgent.Load() })
	if i > 0 {
		if s.passed++; s.passed%fairTurn == 0 {
			i = 0
		}
	}
	if i < 0 {
		i = 0
	}
	w := s.waiters[i]
	s.waiters = slices.Delete(s.waiters, i, i+1)
	w.granted = true
	close(w.ready)
}

// Expedite makes urgent, as if their calls had been made under Urgent, the
// uploads still in progress that the closures of roots need: for a root
// whose upload began before anyone waited for it. NARs already streaming
// are not interrupted; the others take the next free slot. Roots that no
// call is uploading are ignored. It does not block.
//
// A root the Observer now follows but was not given a plan of (it was
// planned before anyone followed it) gets its plan now, followed by
// Finished for the members already uploaded, so a progress display shows
// the whole closure.
func (u *Uploader) Expedite(roots []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	o := u.cfg.Observer
	for p := range u.plans {
		for _, root := range roots {
			if p.infos[root] == nil {
				continue
			}
			if o != nil && !p.observed[root] && follows(o, root) {
				closure, sizes := p.observe(root)
				o.Planned(root, closure, sizes)
				for path := range sizes {
					if f := p.flights[path]; f != nil && f.finished {
						o.Finished(path, f.err)
					}
				}
			}
			for _, path := range p.closure(root) {
				if f := p.flights[path]; f != nil && !f.finished {
					f.urgent.Store(true)
				}
			}
		}
	}
}
