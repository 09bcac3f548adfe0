package queue

import (
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func presenceCount(t *testing.T, q *Queue) int64 {
	t.Helper()
	var n int64
	if err := q.view("count", func(tx *bolt.Tx) error {
		n = int64(tx.Bucket([]byte(bPresence)).Stats().KeyN)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func fresh(t *testing.T, q *Queue, ttl time.Duration, keys ...string) string {
	t.Helper()
	m, err := q.PresentFresh(keys, ttl)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		if m[k] {
			out = append(out, k)
		}
	}
	return fmt.Sprint(out)
}

func TestPresence(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now, PresenceMaxAge: 2 * time.Hour})
	if err := q.MarkPresent([]string{"k1", "k2", "k1"}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	steps := []struct {
		name string
		do   func() error
		ttl  time.Duration
		want string
	}{
		{"within ttl", nil, time.Hour, "[k1 k2]"},
		{"exactly ttl", nil, 30 * time.Minute, "[k1 k2]"},
		{"beyond ttl", nil, 10 * time.Minute, "[]"},
		{"refreshed", func() error { return q.MarkPresent([]string{"k1"}) }, 10 * time.Minute, "[k1]"},
		{"forgotten", func() error { return q.ForgetPresent([]string{"k1", "never"}) }, time.Hour, "[k2]"},
		{"ttl capped by max age", func() error { clk.Advance(2 * time.Hour); return nil }, 24 * time.Hour, "[]"},
	}
	for _, s := range steps {
		if s.do != nil {
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
		if got := fresh(t, q, s.ttl, "k1", "k2", "k3"); got != s.want {
			t.Errorf("%s: fresh %s, want %s", s.name, got, s.want)
		}
	}
	// k2 is beyond the max age now and goes with the next write.
	if n := presenceCount(t, q); n != 1 {
		t.Fatalf("%d marks before pruning, want 1", n)
	}
	if err := q.MarkPresent([]string{"k3"}); err != nil {
		t.Fatal(err)
	}
	if n := presenceCount(t, q); n != 1 {
		t.Errorf("%d marks after pruning, want only k3", n)
	}
	if err := q.MarkPresent([]string{""}); err == nil {
		t.Error("an empty key was accepted")
	}
}

func TestPresenceLimit(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now, PresenceLimit: 2})
	for i := range 5 {
		clk.Advance(time.Second)
		if err := q.MarkPresent([]string{fmt.Sprintf("k%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := fresh(t, q, time.Hour, "k0", "k1", "k2", "k3", "k4"); got != "[k3 k4]" {
		t.Errorf("fresh %s, want the newest two", got)
	}
	if n := presenceCount(t, q); n != 2 {
		t.Errorf("%d marks kept, want 2", n)
	}
}
