package aimd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func mustNew(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{Initial: 0, Max: 4},
		{Initial: 5, Max: 4},
		{Initial: 2, Min: 3, Max: 4},
		{Initial: 2, Max: 4, Backoff: 1},
		{Initial: 2, Max: 4, Backoff: -0.5},
		{Initial: 2, Max: 4, Cooldown: -time.Second},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	if err := (Config{Initial: 4, Max: 4}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestSlowStartThenAdditive(t *testing.T) {
	ctx := context.Background()
	l := mustNew(t, Config{Initial: 4, Max: 100, Backoff: 0.5})
	clock := time.Unix(0, 0)
	l.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	round := func(o Outcome) {
		n := l.Limit()
		slots := make([]Slot, n)
		for i := range slots {
			s, err := l.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			slots[i] = s
		}
		for _, s := range slots {
			l.Release(s, o)
		}
	}
	round(Success)
	if got := l.Limit(); got != 8 {
		t.Fatalf("after one round of successes in slow start: limit %d, want 8", got)
	}
	round(Success)
	if got := l.Limit(); got != 16 {
		t.Fatalf("limit %d, want 16", got)
	}
	round(Throttled) // a whole window throttled: one decrease
	if got, st := l.Limit(), l.Stats(); got != 8 || st.Decreases != 1 {
		t.Fatalf("after a throttled window: limit %d with %d decreases, want 8 and 1", got, st.Decreases)
	}
	round(Success) // additive now: about +1 per window
	if got := l.Limit(); got != 8 && got != 9 {
		t.Fatalf("after a window of successes past slow start: limit %d, want 8 or 9", got)
	}
	for range 50 {
		round(Success)
	}
	if got := l.Limit(); got < 40 || got > 60 {
		t.Fatalf("after 50 more windows: limit %d, want about 9+50 (additive)", got)
	}
	for range 20 {
		round(Throttled)
	}
	if got := l.Limit(); got != 1 {
		t.Fatalf("after repeated throttling: limit %d, want the minimum 1", got)
	}
	for range 200 {
		round(Success)
	}
	if got := l.Limit(); got > 100 {
		t.Fatalf("limit %d above Max", got)
	}
}

func TestBlocksAtLimitAndCancel(t *testing.T) {
	l := mustNew(t, Config{Initial: 2, Max: 2})
	ctx := context.Background()
	a, _ := l.Acquire(ctx)
	b, _ := l.Acquire(ctx)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.Acquire(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire at the limit = %v, want the context's deadline", err)
	}
	got := make(chan Slot)
	go func() {
		s, err := l.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- s
	}()
	select {
	case <-got:
		t.Fatal("Acquire returned while the limit was held")
	case <-time.After(20 * time.Millisecond):
	}
	l.Release(a, Ignored)
	c := <-got
	if st := l.Stats(); st.InFlight != 2 || st.Waiting != 0 {
		t.Fatalf("stats %+v, want 2 in flight, none waiting", st)
	}
	l.Release(b, Ignored)
	l.Release(c, Ignored)
	if st := l.Stats(); st.InFlight != 0 || st.Limit != 2 {
		t.Fatalf("stats %+v, want none in flight and the limit unchanged by Ignored", st)
	}
}

func TestConcurrentNeverExceeds(t *testing.T) {
	l := mustNew(t, Config{Initial: 8, Max: 32})
	var cur, peak atomic.Int64
	var over atomic.Bool
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 200 {
				s, err := l.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				n := cur.Add(1)
				if n > int64(32) {
					over.Store(true)
				}
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				o := Success
				if (g+i)%17 == 0 {
					o = Throttled
				}
				cur.Add(-1)
				l.Release(s, o)
			}
		})
	}
	wg.Wait()
	if over.Load() {
		t.Fatalf("more than Max slots held at once (peak %d)", peak.Load())
	}
	if st := l.Stats(); st.InFlight != 0 || st.Waiting != 0 {
		t.Fatalf("stats after all released: %+v", st)
	}
}

// Throttled answers within the cooldown of a decrease do not decrease
// again, even for requests sent after it.
func TestCooldown(t *testing.T) {
	ctx := context.Background()
	l := mustNew(t, Config{Initial: 40, Max: 100, Cooldown: time.Second})
	clock := time.Unix(100, 0)
	l.now = func() time.Time { return clock }
	for i := range 10 {
		s, _ := l.Acquire(ctx)
		l.Release(s, Throttled)
		if i == 0 && l.Limit() != 30 {
			t.Fatalf("limit %d after one throttled answer, want 40 × 0.75 = 30", l.Limit())
		}
	}
	if st := l.Stats(); st.Limit != 30 || st.Decreases != 1 {
		t.Fatalf("%+v after 10 throttled answers within the cooldown, want one decrease to 30", st)
	}
	clock = clock.Add(time.Second)
	s, _ := l.Acquire(ctx)
	l.Release(s, Throttled)
	if st := l.Stats(); st.Limit != 22 || st.Decreases != 2 {
		t.Fatalf("%+v after the cooldown, want a second decrease to 22", st)
	}
}
