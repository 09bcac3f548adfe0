package uploader

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func granted(w *slotWaiter) bool {
	select {
	case <-w.ready:
		return true
	default:
		return false
	}
}

func TestSlotsUrgentFirst(t *testing.T) {
	s := newSlots(1)
	var no, yes atomic.Bool
	yes.Store(true)
	a := s.wait(&no)
	if !granted(a) {
		t.Fatal("first waiter not granted a free slot")
	}
	b := s.wait(&no)
	var late atomic.Bool
	c := s.wait(&late)
	d := s.wait(&yes)
	late.Store(true) // c becomes urgent while waiting
	s.release()      // a done: c is the first urgent waiter
	if !granted(c) || granted(b) || granted(d) {
		t.Fatalf("after release: b %v c %v d %v, want c", granted(b), granted(c), granted(d))
	}
	s.cancel(d) // d gives up before being granted
	s.release() // c done: b, the only one left
	if !granted(b) {
		t.Fatal("b not granted")
	}
	s.cancel(b) // b gives up after being granted: the slot is free again
	e := s.wait(&no)
	if !granted(e) {
		t.Fatal("slot given up by b not free")
	}
}

func TestSlotsDoNotStarveTheRest(t *testing.T) {
	s := newSlots(1)
	var no, yes atomic.Bool
	yes.Store(true)
	held := s.wait(&no)
	old := s.wait(&no)
	var urgent []*slotWaiter
	for range 10 {
		urgent = append(urgent, s.wait(&yes))
	}
	_ = held
	grants := 0
	for !granted(old) {
		s.release()
		grants++
		if grants > fairTurn {
			t.Fatalf("the old waiter was passed %d times", grants)
		}
	}
	if grants != fairTurn {
		t.Errorf("the old waiter got the %dth slot, want the %dth", grants, fairTurn)
	}
	for _, u := range urgent[:fairTurn-1] {
		if !granted(u) {
			t.Error("an urgent waiter before the fair turn was not served")
		}
	}
}

// TestUrgentUploadOvertakesBacklog: with one streaming slot and a cache
// that takes a while per NAR, an urgent upload started after a backlog of
// twenty paths streams its NAR right after the one in progress, not after
// the whole backlog.
func TestUrgentUploadOvertakesBacklog(t *testing.T) {
	s := newFakeStore(t)
	var backlog []string
	for i := range 20 {
		backlog = append(backlog, s.add(t, fmt.Sprintf("backlog-%02d", i), map[string]string{"f": strings.Repeat(fmt.Sprint(i), smallNARMax)}))
	}
	// Streamed NARs (small ones take no streaming slot: smallnar.go).
	mine := s.add(t, "mine", map[string]string{"f": strings.Repeat("u", smallNARMax)})
	c := newFakeCache()
	c.beforePut = func(key string) {
		if strings.HasPrefix(key, "nar/") {
			time.Sleep(5 * time.Millisecond)
		}
	}
	rec := &orderObserver{}
	cfg := testConfig(s.dir)
	cfg.Concurrency = 1
	cfg.Observer = rec
	u := newTestUploader(t, cfg, c, s, nil, nil)

	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		u.UploadBatch(ctx, backlog, func(string, Result, error) {})
	})
	// Wait until the backlog holds the slot and the rest queue behind it.
	deadline := time.Now().Add(10 * time.Second)
	for len(u.Active()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("backlog never started")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := u.Upload(Urgent(ctx), mine); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	narOrder := rec.order()
	pos := -1
	for i, p := range narOrder {
		if p == mine {
			pos = i
		}
	}
	if pos < 0 || pos > 3 {
		t.Errorf("urgent path finished %dth of %d, want among the first few: %v", pos+1, len(narOrder), narOrder)
	}
}

// orderObserver records the order in which paths finish.
type orderObserver struct {
	mu   sync.Mutex
	done []string
}

func (o *orderObserver) Planned(string, []string, map[string]uint64) {}

func (o *orderObserver) Finished(path string, _ error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done = append(o.done, path)
}

func (o *orderObserver) order() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.done...)
}

// TestExpediteUploadInProgress starts an upload without urgency behind a
// backlog, as a worker that claimed a path before anyone waited for it,
// and then expedites it: its NAR must take the next free slot.
func TestExpediteUploadInProgress(t *testing.T) {
	for _, expedite := range []bool{true, false} {
		t.Run(fmt.Sprintf("expedite=%v", expedite), func(t *testing.T) {
			s := newFakeStore(t)
			var backlog []string
			for i := range 20 {
				backlog = append(backlog, s.add(t, fmt.Sprintf("backlog-%02d", i), map[string]string{"f": strings.Repeat(fmt.Sprint(i), smallNARMax)}))
			}
			// Streamed NARs: small ones have their own lane (smallnar.go).
			dep := s.add(t, "mine-dep", map[string]string{"f": strings.Repeat("d", smallNARMax)})
			mine := s.add(t, "mine", map[string]string{"f": strings.Repeat("u", smallNARMax)}, dep)
			c := newFakeCache()
			c.beforePut = func(key string) {
				if strings.HasPrefix(key, "nar/") {
					time.Sleep(5 * time.Millisecond)
				}
			}
			rec := &orderObserver{}
			cfg := testConfig(s.dir)
			cfg.Concurrency = 1
			cfg.Observer = rec
			u := newTestUploader(t, cfg, c, s, nil, nil)

			ctx := context.Background()
			var wg sync.WaitGroup
			wg.Go(func() { u.UploadBatch(ctx, backlog, func(string, Result, error) {}) })
			deadline := time.Now().Add(10 * time.Second)
			for len(u.Active()) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("backlog never started")
				}
				time.Sleep(time.Millisecond)
			}
			wg.Go(func() {
				if _, err := u.Upload(ctx, mine); err != nil {
					t.Error(err)
				}
			})
			// Wait until mine's flights exist, then expedite it.
			for {
				u.mu.Lock()
				_, ok := u.flights[dep]
				u.mu.Unlock()
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the upload of mine never started")
				}
				time.Sleep(time.Millisecond)
			}
			if expedite {
				u.Expedite([]string{mine, "/nix/store/00000000000000000000000000000000-not-uploading"})
			}
			wg.Wait()
			order := rec.order()
			pos := slices.Index(order, mine)
			switch {
			case pos < 0:
				t.Fatalf("mine never finished: %v", order)
			case expedite && pos > 5:
				t.Errorf("expedited path finished %dth of %d, want among the first few: %v", pos+1, len(order), order)
			case !expedite && pos < 10:
				t.Errorf("without Expedite the path finished %dth of %d: the test cannot tell the difference", pos+1, len(order))
			}
		})
	}
}

// lateObserver follows only the roots in follow, which a test may extend
// while an upload runs, as the daemon does when a waiter arrives.
type lateObserver struct {
	mu       sync.Mutex
	follow   map[string]bool
	planned  map[string][]string
	missing  map[string]int
	finished map[string]bool
	plans    int
}

func (o *lateObserver) Follows(root string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.follow[root]
}

func (o *lateObserver) Planned(root string, closure []string, missing map[string]uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.planned[root] = closure
	o.missing[root] = len(missing)
	o.plans++
}

func (o *lateObserver) Finished(path string, _ error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.finished[path] = true
}

// TestExpeditePlansForLateFollower checks that a root planned before the
// Observer followed it gets its plan when it is expedited, with Finished
// replayed for members already uploaded, so progress covers the closure.
func TestExpeditePlansForLateFollower(t *testing.T) {
	s := newFakeStore(t)
	dep := s.add(t, "late-dep", map[string]string{"f": "dep"})
	root := s.add(t, "late-root", map[string]string{"f": "root"}, dep)
	release := make(chan struct{})
	c := newFakeCache()
	c.beforePut = func(key string) {
		if strings.HasSuffix(key, ".narinfo") && strings.HasPrefix(key, strings.SplitN(filepath.Base(root), "-", 2)[0]) {
			<-release // the root's narinfo waits until the test lets it go
		}
	}
	o := &lateObserver{follow: map[string]bool{}, planned: map[string][]string{}, missing: map[string]int{}, finished: map[string]bool{}}
	cfg := testConfig(s.dir)
	cfg.Observer = o
	u := newTestUploader(t, cfg, c, s, nil, nil)

	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := u.Upload(context.Background(), root); err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		o.mu.Lock()
		depDone := o.finished[dep]
		o.mu.Unlock()
		if depDone {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the reference was never uploaded")
		}
		time.Sleep(time.Millisecond)
	}
	o.mu.Lock()
	_, early := o.planned[root]
	o.finished = map[string]bool{} // what a tracker that just began following knows
	o.follow[root] = true
	o.mu.Unlock()
	if early {
		t.Fatal("the root was planned for an observer that did not follow it")
	}
	u.Expedite([]string{root})
	u.Expedite([]string{root}) // a second poll must not plan it again
	o.mu.Lock()
	closure, missing, depReplayed, plans := o.planned[root], o.missing[root], o.finished[dep], o.plans
	o.mu.Unlock()
	close(release)
	wg.Wait()
	if plans != 1 {
		t.Errorf("the root was planned %d times over two polls, want once", plans)
	}
	if len(closure) != 2 || missing != 2 || !depReplayed {
		t.Fatalf("after Expedite: closure %v, %d missing, reference finished %v; want the 2-path closure with the finished reference replayed", closure, missing, depReplayed)
	}
}

// Small NARs have their own lane of smallSlots, granted like the streaming
// slots: an urgent small NAR goes ahead of a backlog of small ones.
func TestUrgentSmallNARAheadOfSmallBacklog(t *testing.T) {
	s := newFakeStore(t)
	var backlog []string
	for i := range 3 * smallSlots {
		backlog = append(backlog, s.add(t, fmt.Sprintf("small-backlog-%03d", i), map[string]string{"f": fmt.Sprint(i)}))
	}
	mine := s.add(t, "mine", map[string]string{"f": "urgent"})
	var mineKey string // set before any upload starts
	// Each backlog NAR write waits for a token, so that the first lane's
	// worth holds every small slot and the rest queue behind it however
	// fast or loaded the machine is; tokens are then handed out one at a
	// time, so each freed slot goes to exactly one waiter.
	tokens := make(chan struct{})
	unblockAll := func() {
		go func() {
			for {
				tokens <- struct{}{}
			}
		}()
	}
	var blocked atomic.Int32
	var putMu sync.Mutex
	var narPuts []string
	c := newFakeCache()
	c.beforePut = func(key string) {
		if !strings.HasPrefix(key, "nar/") {
			return
		}
		putMu.Lock()
		narPuts = append(narPuts, key)
		putMu.Unlock()
		if key != mineKey {
			blocked.Add(1)
			<-tokens
		}
	}
	rec := &orderObserver{}
	cfg := testConfig(s.dir)
	cfg.Observer = rec
	u := newTestUploader(t, cfg, c, s, nil, nil)
	mineKey = narKey(s.info(mine).NarHash, u.codec.ext)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() { u.UploadBatch(ctx, backlog, func(string, Result, error) {}) })
	deadline := time.Now().Add(30 * time.Second)
	for blocked.Load() < smallSlots {
		if time.Now().After(deadline) {
			unblockAll()
			t.Fatalf("the small backlog never filled its lane: %d of %d NAR writes under way", blocked.Load(), smallSlots)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if n := blocked.Load(); n != smallSlots {
		unblockAll()
		t.Fatalf("%d backlog NAR writes under way at once, want the lane's %d", n, smallSlots)
	}
	urgentDone := make(chan error, 1)
	go func() {
		_, err := u.Upload(Urgent(ctx), mine)
		urgentDone <- err
	}()
	for { // the urgent upload has begun: its NAR waits for a slot
		u.mu.Lock()
		_, started := u.flights[mine]
		u.mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			unblockAll()
			t.Fatal("the urgent upload never started")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	for range backlog {
		tokens <- struct{}{}
		time.Sleep(200 * time.Microsecond)
	}
	if err := <-urgentDone; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	putMu.Lock()
	pos := slices.Index(narPuts, mineKey)
	putMu.Unlock()
	// Without priority it would queue behind the 128 waiting backlog NARs.
	if pos < 0 || pos > smallSlots+smallSlots/8 {
		t.Errorf("urgent small NAR was sent %dth of %d, want right after the lane that was writing (%d)", pos+1, len(narPuts), smallSlots)
	}
	if order := rec.order(); !slices.Contains(order, mine) {
		t.Errorf("the urgent path never finished: %v", order)
	}
}
