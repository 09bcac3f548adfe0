package queue

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestClaimOrderAndDueTimes(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now, BackoffBase: time.Minute, BackoffMax: time.Minute})
	if _, ok := q.NextDue(); ok {
		t.Error("empty queue has a due time")
	}
	enqueue(t, q, "/nix/store/z-first")
	clk.Advance(time.Second)
	enqueue(t, q, "/nix/store/c", "/nix/store/b")
	if due, ok := q.NextDue(); !ok || !due.Equal(clk.Now().Add(-time.Second)) {
		t.Errorf("next due %s %v, want the first enqueue time", due, ok)
	}
	// Earliest due first; equal due times in path order.
	if got, want := claim(t, q, 2), []string{"/nix/store/z-first", "/nix/store/b"}; !slices.Equal(got, want) {
		t.Fatalf("claimed %v, want %v", got, want)
	}
	if got := claim(t, q, 0); got != nil {
		t.Errorf("claim(0) returned %v", got)
	}
	// b fails and is due in 30s..60s; only c is due now.
	failed, err := q.Fail("/nix/store/b", "timeout", FailOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := claim(t, q, 10); !slices.Equal(got, []string{"/nix/store/c"}) {
		t.Fatalf("claimed %v, want only c", got)
	}
	if got := claim(t, q, 10); len(got) != 0 {
		t.Fatalf("claimed %v before anything was due", got)
	}
	due, ok := q.NextDue()
	if !ok || !due.Equal(failed.NextAttempt) {
		t.Fatalf("next due %s %v, want b's retry at %s", due, ok, failed.NextAttempt)
	}
	clk.Advance(due.Sub(clk.Now()) - time.Nanosecond)
	if got := claim(t, q, 10); len(got) != 0 {
		t.Fatalf("claimed %v a nanosecond early", got)
	}
	clk.Advance(time.Nanosecond)
	if got := claim(t, q, 10); !slices.Equal(got, []string{"/nix/store/b"}) {
		t.Fatalf("claimed %v when b was due", got)
	}
	it := mustGet(t, q, "/nix/store/b")
	if it.Attempts != 1 || it.LastError != "timeout" || !it.LeasedAt.Equal(clk.Now()) {
		t.Errorf("b after second claim: %+v", it)
	}
}

func TestBackoff(t *testing.T) {
	clk := newClock()
	base, limit := time.Second, 8*time.Second
	q := openTest(t, Config{Now: clk.Now, MaxAttempts: 100, BackoffBase: base, BackoffMax: limit})
	const p = "/nix/store/flaky"
	enqueue(t, q, p)
	tests := []struct {
		attempt    int
		retryAfter time.Duration
		min, max   time.Duration
	}{
		{1, 0, 500 * time.Millisecond, time.Second},
		{2, 0, time.Second, 2 * time.Second},
		{3, 0, 2 * time.Second, 4 * time.Second},
		{4, 0, 4 * time.Second, 8 * time.Second},
		{5, 0, 4 * time.Second, 8 * time.Second}, // capped at BackoffMax
		{6, time.Hour, time.Hour, time.Hour},     // Retry-After is a floor
		{7, time.Millisecond, 4 * time.Second, 8 * time.Second},
	}
	for _, tt := range tests {
		clk.Advance(2 * time.Hour)
		if got := claim(t, q, 1); len(got) != 1 {
			t.Fatalf("attempt %d: nothing to claim", tt.attempt)
		}
		it, err := q.Fail(p, "flaky", FailOptions{RetryAfter: tt.retryAfter})
		if err != nil {
			t.Fatal(err)
		}
		delay := it.NextAttempt.Sub(clk.Now())
		if it.Attempts != tt.attempt || it.State != Pending || delay < tt.min || delay > tt.max {
			t.Errorf("attempt %d: attempts=%d state=%s delay=%s, want delay in [%s, %s]",
				tt.attempt, it.Attempts, it.State, delay, tt.min, tt.max)
		}
	}

	// The jitter itself: always within [b/2, b], and actually spread out.
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := q.backoff(3)
		if d < 2*time.Second || d > 4*time.Second {
			t.Fatalf("backoff(3) = %s outside [2s, 4s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("backoff(3) took only %d distinct values in 1000 draws", len(seen))
	}
	if d := q.backoff(1000); d < limit/2 || d > limit {
		t.Errorf("backoff(1000) = %s, want within [%s, %s]", d, limit/2, limit)
	}
}

func TestFailedList(t *testing.T) {
	tests := []struct {
		name         string
		fails        int
		permanent    bool
		wantAttempts int
	}{
		{"after max attempts", 3, false, 3},
		{"permanent at once", 1, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			q := openTest(t, Config{Now: clk.Now, MaxAttempts: 3})
			const p = "/nix/store/broken"
			enqueue(t, q, p)
			var it Item
			for i := range tt.fails {
				clk.Advance(time.Hour)
				if got := claim(t, q, 1); len(got) != 1 || got[0] != p {
					t.Fatalf("fail %d: claimed %v", i, got)
				}
				var err error
				it, err = q.Fail(p, "nar hash mismatch", FailOptions{Permanent: tt.permanent})
				if err != nil {
					t.Fatal(err)
				}
				if i < tt.fails-1 && it.State != Pending {
					t.Fatalf("fail %d moved to %s early", i, it.State)
				}
			}
			if it.State != Failed || it.Attempts != tt.wantAttempts || it.LastError != "nar hash mismatch" {
				t.Fatalf("after failing: %+v", it)
			}
			enqueue(t, q, "/nix/store/other")
			s := mustStats(t, q)
			if s.Failed != 1 || s.FailedTotal != 1 || s.Pending != 1 {
				t.Errorf("stats %+v, want one failed, one pending", s)
			}
			failed, err := q.Items(Failed, 0)
			if err != nil || len(failed) != 1 || failed[0].Path != p {
				t.Errorf("failed items %v %v", failed, err)
			}
			clk.Advance(24 * time.Hour)
			if got := claim(t, q, 10); slices.Contains(got, p) {
				t.Error("a failed item was claimed")
			}
		})
	}
}

func TestNotLeased(t *testing.T) {
	q := openTest(t, Config{})
	enqueue(t, q, "/nix/store/pending")
	for _, p := range []string{"/nix/store/pending", "/nix/store/unknown"} {
		if err := q.Complete(p, Outcome{}); !errors.Is(err, ErrNotLeased) {
			t.Errorf("complete %s: %v, want ErrNotLeased", p, err)
		}
		if _, err := q.Fail(p, "x", FailOptions{}); !errors.Is(err, ErrNotLeased) {
			t.Errorf("fail %s: %v, want ErrNotLeased", p, err)
		}
	}
	if it := mustGet(t, q, "/nix/store/pending"); it.State != Pending || it.Attempts != 0 {
		t.Errorf("pending item changed: %+v", it)
	}
}

func TestRetry(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now})
	failed := []string{"/nix/store/a", "/nix/store/b", "/nix/store/c"}
	enqueue(t, q, failed...)
	claim(t, q, 3)
	for _, p := range failed {
		if _, err := q.Fail(p, "denied", FailOptions{Permanent: true}); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(t, q, "/nix/store/d")
	clk.Advance(time.Hour)

	n, err := q.Retry([]string{"/nix/store/a", "/nix/store/a", "/nix/store/d", "/nix/store/unknown"})
	if err != nil || n != 1 {
		t.Fatalf("retry named: %d %v, want 1", n, err)
	}
	it := mustGet(t, q, "/nix/store/a")
	if it.State != Pending || it.Attempts != 0 || !it.NextAttempt.Equal(clk.Now()) {
		t.Errorf("retried item %+v, want pending, due now, no attempts", it)
	}
	if n, err := q.Retry(nil); err != nil || n != 2 {
		t.Fatalf("retry all: %d %v, want 2", n, err)
	}
	if n, err := q.Retry(nil); err != nil || n != 0 {
		t.Fatalf("retry with nothing failed: %d %v, want 0", n, err)
	}
	if s := mustStats(t, q); s.Pending != 4 || s.Failed != 0 || s.FailedTotal != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestRelease(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now})
	enqueue(t, q, "/nix/store/a", "/nix/store/b")
	claim(t, q, 2)
	if _, err := q.Fail("/nix/store/a", "x", FailOptions{}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	claim(t, q, 1)
	clk.Advance(time.Minute)
	if err := q.Release([]string{"/nix/store/a", "/nix/store/not-leased"}); err != nil {
		t.Fatal(err)
	}
	a := mustGet(t, q, "/nix/store/a")
	if a.State != Pending || a.Attempts != 1 || !a.NextAttempt.Equal(clk.Now()) || !a.LeasedAt.IsZero() {
		t.Errorf("released item %+v, want pending due now with its attempt kept", a)
	}
	if b := mustGet(t, q, "/nix/store/b"); b.State != Leased {
		t.Errorf("unnamed item was released: %+v", b)
	}
	if err := q.Release(nil); err != nil {
		t.Fatal(err)
	}
	if s := mustStats(t, q); s.Pending != 1 || s.Leased != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestNotify(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now, MaxAttempts: 1})
	notified := func() bool {
		select {
		case <-q.Notify():
			return true
		default:
			return false
		}
	}
	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"enqueue new", func() { enqueue(t, q, "/nix/store/a", "/nix/store/b") }, true},
		{"enqueue existing", func() { enqueue(t, q, "/nix/store/a") }, false},
		{"claim", func() { claim(t, q, 2) }, false},
		{"release", func() { _ = q.Release([]string{"/nix/store/a"}) }, true},
		{"fail to failed list", func() { _, _ = q.Fail("/nix/store/b", "x", FailOptions{}) }, false},
		{"retry", func() { _, _ = q.Retry(nil) }, true},
		{"retry nothing", func() { _, _ = q.Retry(nil) }, false},
		{"coalesced", func() {
			enqueue(t, q, "/nix/store/c")
			enqueue(t, q, "/nix/store/d")
			if !notified() {
				t.Error("no signal after two enqueues")
			}
		}, false},
	}
	for _, s := range steps {
		s.do()
		if got := notified(); got != s.want {
			t.Errorf("%s: notified=%v, want %v", s.name, got, s.want)
		}
	}
}

// After an outage, items whose attempts ran out on transient failures since
// a given time go back to pending; permanent failures and older ones stay.
func TestRetryTransient(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now, MaxAttempts: 1})
	enqueue(t, q, "/nix/store/old", "/nix/store/outage1", "/nix/store/outage2", "/nix/store/denied")
	claim(t, q, 4)
	if _, err := q.Fail("/nix/store/old", "reset", FailOptions{}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	since := clk.Now()
	for _, p := range []string{"/nix/store/outage1", "/nix/store/outage2"} {
		it, err := q.Fail(p, "connection refused", FailOptions{})
		if err != nil || it.State != Failed || it.Permanent || !it.FailedAt.Equal(since) {
			t.Fatalf("fail %s: %+v %v", p, it, err)
		}
	}
	if it, err := q.Fail("/nix/store/denied", "access denied", FailOptions{Permanent: true}); err != nil || !it.Permanent {
		t.Fatalf("permanent fail: %+v %v", it, err)
	}
	n, err := q.RetryTransient(since)
	if err != nil || n != 2 {
		t.Fatalf("RetryTransient = %d, %v; want 2", n, err)
	}
	for p, want := range map[string]State{"/nix/store/old": Failed, "/nix/store/outage1": Pending, "/nix/store/outage2": Pending, "/nix/store/denied": Failed} {
		it := mustGet(t, q, p)
		if it.State != want {
			t.Errorf("%s: %s, want %s", p, it.State, want)
		}
		if it.State == Pending && (it.Attempts != 0 || !it.FailedAt.IsZero() || it.Permanent) {
			t.Errorf("%s retried but kept its failure: %+v", p, it)
		}
	}
	if n, err := q.RetryTransient(time.Time{}); err != nil || n != 1 {
		t.Fatalf("RetryTransient(zero) = %d, %v; want the old transient one", n, err)
	}
}

// Items written in the first encoding still decode after the upgrade.
func TestDecodeItemV1(t *testing.T) {
	enq := time.Unix(1700000000, 5)
	b := []byte{itemEncodingV1, Failed.code()}
	b = binary.AppendUvarint(b, 3)
	b = binary.AppendVarint(b, enq.UnixNano())
	b = binary.AppendVarint(b, 0)
	b = binary.AppendVarint(b, 0)
	b = append(b, "boom"...)
	it, err := decodeItem("/nix/store/x", b)
	if err != nil {
		t.Fatal(err)
	}
	if it.State != Failed || it.Attempts != 3 || !it.EnqueuedAt.Equal(enq) || it.LastError != "boom" || it.Permanent || !it.FailedAt.IsZero() {
		t.Fatalf("decoded %+v", it)
	}
	round, err := decodeItem("/nix/store/x", encodeItem(Item{Path: "/nix/store/x", State: Failed, Attempts: 2, FailedAt: enq, Permanent: true, LastError: "denied"}))
	if err != nil || !round.Permanent || !round.FailedAt.Equal(enq) || round.LastError != "denied" {
		t.Fatalf("v2 round trip %+v %v", round, err)
	}
}
