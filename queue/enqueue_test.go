package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestEnqueueIdempotent(t *testing.T) {
	const a, b = "/nix/store/aaaa-a", "/nix/store/bbbb-b"
	tests := []struct {
		name      string
		setup     func(t *testing.T, q *Queue, clk *clock)
		paths     []string
		want      EnqueueResult
		wantState map[string]State
		wantStats [3]int // pending, leased, failed
	}{
		{
			name:      "new paths",
			paths:     []string{a, b},
			want:      EnqueueResult{Added: 2},
			wantState: map[string]State{a: Pending, b: Pending},
			wantStats: [3]int{2, 0, 0},
		},
		{
			name:      "duplicates in one call count once",
			paths:     []string{a, b, a, a},
			want:      EnqueueResult{Added: 2},
			wantState: map[string]State{a: Pending, b: Pending},
			wantStats: [3]int{2, 0, 0},
		},
		{
			name:      "empty call",
			paths:     nil,
			want:      EnqueueResult{},
			wantStats: [3]int{0, 0, 0},
		},
		{
			name:      "pending path untouched",
			setup:     func(t *testing.T, q *Queue, _ *clock) { enqueue(t, q, a) },
			paths:     []string{a, b},
			want:      EnqueueResult{Added: 1, AlreadyQueued: 1},
			wantState: map[string]State{a: Pending, b: Pending},
			wantStats: [3]int{2, 0, 0},
		},
		{
			name: "leased path untouched",
			setup: func(t *testing.T, q *Queue, _ *clock) {
				enqueue(t, q, a)
				claim(t, q, 1)
			},
			paths:     []string{a},
			want:      EnqueueResult{AlreadyQueued: 1},
			wantState: map[string]State{a: Leased},
			wantStats: [3]int{0, 1, 0},
		},
		{
			name: "failed path requeued",
			setup: func(t *testing.T, q *Queue, _ *clock) {
				enqueue(t, q, a)
				claim(t, q, 1)
				if _, err := q.Fail(a, "denied", FailOptions{Permanent: true}); err != nil {
					t.Fatal(err)
				}
			},
			paths:     []string{a, a},
			want:      EnqueueResult{Requeued: 1},
			wantState: map[string]State{a: Pending},
			wantStats: [3]int{1, 0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			q := openTest(t, Config{Now: clk.Now})
			if tt.setup != nil {
				tt.setup(t, q, clk)
			}
			before := map[string]Item{}
			for p := range tt.wantState {
				if it, ok, _ := q.Get(p); ok {
					before[p] = it
				}
			}
			clk.Advance(time.Minute)
			if got := enqueue(t, q, tt.paths...); got != tt.want {
				t.Errorf("result %+v, want %+v", got, tt.want)
			}
			for p, st := range tt.wantState {
				it := mustGet(t, q, p)
				if it.State != st {
					t.Errorf("%s is %s, want %s", p, it.State, st)
				}
				prev, existed := before[p]
				switch {
				case !existed || prev.State == Failed:
					// New or requeued: pending, due now, no attempts.
					if !it.NextAttempt.Equal(clk.Now()) || !it.EnqueuedAt.Equal(clk.Now()) || it.Attempts != 0 {
						t.Errorf("%s: %+v, want due and enqueued now with 0 attempts", p, it)
					}
				case it != prev:
					t.Errorf("%s changed by re-enqueue: %+v -> %+v", p, prev, it)
				}
			}
			s := mustStats(t, q)
			if got := [3]int{s.Pending, s.Leased, s.Failed}; got != tt.wantStats {
				t.Errorf("stats pending/leased/failed %v, want %v", got, tt.wantStats)
			}
		})
	}
}

func TestEnqueueRejectsInvalidPathAtomically(t *testing.T) {
	q := openTest(t, Config{})
	for _, bad := range []string{"", "a\x00b", string(make([]byte, maxPathLen+1))} {
		_, err := q.Enqueue(context.Background(), []string{"/nix/store/good", bad})
		if !errors.Is(err, ErrInvalidPath) {
			t.Errorf("path %q: error %v, want ErrInvalidPath", bad, err)
		}
	}
	if _, ok, _ := q.Get("/nix/store/good"); ok {
		t.Error("a call with an invalid path recorded its valid path")
	}
}

func TestEnqueueCanceledContext(t *testing.T) {
	q := openTest(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.Enqueue(ctx, []string{"/nix/store/a"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if _, ok, _ := q.Get("/nix/store/a"); ok {
		t.Error("a canceled call recorded its path")
	}
}

func TestConcurrentEnqueueGroupCommits(t *testing.T) {
	q := openTest(t, Config{})
	const goroutines, callsEach = 64, 10
	start := make(chan struct{})
	results := make([]EnqueueResult, goroutines)
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range callsEach {
				// Two paths of our own and one shared by every goroutine.
				paths := []string{
					fmt.Sprintf("/nix/store/g%02d-%02d-x", g, i),
					fmt.Sprintf("/nix/store/g%02d-%02d-y", g, i),
					fmt.Sprintf("/nix/store/shared-%02d", i),
				}
				res, err := q.Enqueue(context.Background(), paths)
				if err != nil {
					errs[g] = err
					return
				}
				results[g].Added += res.Added
				results[g].AlreadyQueued += res.AlreadyQueued
				results[g].Requeued += res.Requeued
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	distinct := goroutines*callsEach*2 + callsEach
	var total EnqueueResult
	for _, r := range results {
		total.Added += r.Added
		total.AlreadyQueued += r.AlreadyQueued
	}
	if total.Added != distinct || total.AlreadyQueued != goroutines*callsEach*3-distinct {
		t.Errorf("added %d, already queued %d; want %d and %d", total.Added, total.AlreadyQueued, distinct, goroutines*callsEach*3-distinct)
	}
	items, err := q.Items(Pending, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, it := range items {
		if seen[it.Path] {
			t.Errorf("%s listed twice", it.Path)
		}
		seen[it.Path] = true
	}
	if len(seen) != distinct || mustStats(t, q).Pending != distinct {
		t.Errorf("%d distinct pending items, stats say %d; want %d", len(seen), mustStats(t, q).Pending, distinct)
	}
	calls := uint64(goroutines * callsEach)
	commits := q.Commits()
	t.Logf("%d enqueue calls in %d commits", calls, commits)
	if commits == 0 || commits >= calls {
		t.Errorf("%d commits for %d concurrent calls: group commit did not happen", commits, calls)
	}
}

// A request that fails inside the shared transaction must not take the other
// requests of its group down with it.
func TestGroupCommitIsolatesFailingRequest(t *testing.T) {
	q := openTest(t, Config{})
	boom := errors.New("boom")
	mk := func(apply func(tx *bolt.Tx) error) *writeReq {
		return &writeReq{apply: apply, done: make(chan struct{})}
	}
	var resA, resB EnqueueResult
	good1 := mk(func(tx *bolt.Tx) error {
		var err error
		resA, err = q.enqueueTx(tx, []string{"/nix/store/a"})
		return err
	})
	bad := mk(func(tx *bolt.Tx) error {
		if _, err := q.enqueueTx(tx, []string{"/nix/store/bad"}); err != nil {
			return err
		}
		return boom
	})
	good2 := mk(func(tx *bolt.Tx) error {
		var err error
		resB, err = q.enqueueTx(tx, []string{"/nix/store/b"})
		return err
	})
	q.commitBatch([]*writeReq{good1, bad, good2})
	if good1.err != nil || good2.err != nil || !errors.Is(bad.err, boom) {
		t.Fatalf("errors: %v, %v, %v", good1.err, bad.err, good2.err)
	}
	if resA.Added != 1 || resB.Added != 1 {
		t.Errorf("results %+v %+v, want one added each", resA, resB)
	}
	for p, want := range map[string]bool{"/nix/store/a": true, "/nix/store/b": true, "/nix/store/bad": false} {
		if _, ok, _ := q.Get(p); ok != want {
			t.Errorf("%s queued=%v, want %v", p, ok, want)
		}
	}
}
