package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap/zaptest"
)

// openTest opens a queue (in a fresh t.TempDir() unless cfg.Path is set)
// and, at cleanup, fails the test if Check finds a violated invariant, then
// closes it. A queue the test closed itself is not checked again.
func openTest(t testing.TB, cfg Config) *Queue {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "queue.db")
	}
	q, err := Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := q.Check(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("invariants violated: %v", err)
		}
		if err := q.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return q
}

// clock is a manually advanced clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func enqueue(t testing.TB, q *Queue, paths ...string) EnqueueResult {
	t.Helper()
	res, err := q.Enqueue(context.Background(), paths)
	if err != nil {
		t.Fatalf("enqueue %v: %v", paths, err)
	}
	return res
}

func claim(t testing.TB, q *Queue, max int) []string {
	t.Helper()
	items, err := q.Claim(max)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	var paths []string
	for _, it := range items {
		if it.State != Leased {
			t.Errorf("claimed %s has state %s", it.Path, it.State)
		}
		paths = append(paths, it.Path)
	}
	return paths
}

func mustGet(t testing.TB, q *Queue, path string) Item {
	t.Helper()
	it, ok, err := q.Get(path)
	if err != nil || !ok {
		t.Fatalf("get %s: ok=%v err=%v", path, ok, err)
	}
	return it
}

func mustStats(t testing.TB, q *Queue) Stats {
	t.Helper()
	s, err := q.Stats()
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return s
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero values mean defaults", Config{Path: "/x"}, ""},
		{"path required", Config{}, "path is required"},
		{"negative timeout", Config{Path: "/x", LockTimeout: -1}, "lock timeout"},
		{"negative attempts", Config{Path: "/x", MaxAttempts: -1}, "max attempts"},
		{"negative history", Config{Path: "/x", HistoryLimit: -5}, "history limit"},
		{"max below base", Config{Path: "/x", BackoffBase: time.Minute, BackoffMax: time.Second}, "below backoff base"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
	if _, err := Open(Config{Path: filepath.Join(t.TempDir(), "q.db"), MaxAttempts: -1}, nil); err == nil {
		t.Fatal("open accepted an invalid config")
	}
}

func TestLockTimeout(t *testing.T) {
	q := openTest(t, Config{})
	start := time.Now()
	q2, err := Open(Config{Path: q.cfg.Path, LockTimeout: 100 * time.Millisecond}, zaptest.NewLogger(t))
	if err == nil {
		_ = q2.Close()
		t.Fatal("second open of a locked file succeeded")
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("second open took %s, want it to fail after the lock timeout", elapsed)
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %v does not match ErrLocked", err)
	}
	want := "queue: " + q.cfg.Path + " is locked by another process (is another nixs3q daemon running?)"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestClosed(t *testing.T) {
	q := openTest(t, Config{})
	enqueue(t, q, "/nix/store/a")
	if err := q.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"Enqueue":       func() error { _, err := q.Enqueue(ctx, []string{"/nix/store/b"}); return err },
		"Claim":         func() error { _, err := q.Claim(1); return err },
		"Complete":      func() error { return q.Complete("/nix/store/a", Outcome{}) },
		"Fail":          func() error { _, err := q.Fail("/nix/store/a", "x", FailOptions{}); return err },
		"Release":       func() error { return q.Release([]string{"/nix/store/a"}) },
		"Retry":         func() error { _, err := q.Retry(nil); return err },
		"Stats":         func() error { _, err := q.Stats(); return err },
		"Items":         func() error { _, err := q.Items(Pending, 0); return err },
		"Get":           func() error { _, _, err := q.Get("/nix/store/a"); return err },
		"History":       func() error { _, err := q.History(0); return err },
		"PresentFresh":  func() error { _, err := q.PresentFresh([]string{"k"}, time.Hour); return err },
		"MarkPresent":   func() error { return q.MarkPresent([]string{"k"}) },
		"ForgetPresent": func() error { return q.ForgetPresent([]string{"k"}) },
		"Check":         q.Check,
		"Close":         q.Close,
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if _, ok := q.NextDue(); ok {
		t.Error("NextDue after Close reported a due time")
	}
}

func TestReopenReturnsLeasesToPending(t *testing.T) {
	clk := newClock()
	cfg := Config{Path: filepath.Join(t.TempDir(), "q.db"), Now: clk.Now, MaxAttempts: 5}
	q := openTest(t, cfg)
	enqueue(t, q, "/nix/store/a", "/nix/store/b")
	if got := claim(t, q, 2); len(got) != 2 {
		t.Fatalf("claimed %v", got)
	}
	if _, err := q.Fail("/nix/store/b", "boom", FailOptions{}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if got := claim(t, q, 1); len(got) != 1 || got[0] != "/nix/store/b" {
		t.Fatalf("claimed %v, want b again", got)
	}
	enqueue(t, q, "/nix/store/c") // pending, never leased
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Minute)
	reopenedAt := clk.Now()
	q = openTest(t, cfg)
	s := mustStats(t, q)
	if s.Pending != 3 || s.Leased != 0 {
		t.Fatalf("after reopen pending=%d leased=%d, want 3 and 0", s.Pending, s.Leased)
	}
	for path, attempts := range map[string]int{"/nix/store/a": 0, "/nix/store/b": 1, "/nix/store/c": 0} {
		it := mustGet(t, q, path)
		if it.State != Pending || it.Attempts != attempts || !it.LeasedAt.IsZero() {
			t.Errorf("%s after reopen: %+v, want pending with %d attempts", path, it, attempts)
		}
		if path != "/nix/store/c" && !it.NextAttempt.Equal(reopenedAt) {
			t.Errorf("%s due %s, want at once (%s)", path, it.NextAttempt, reopenedAt)
		}
	}
	select {
	case <-q.Notify():
	default:
		t.Error("no notification for pending work at open")
	}
	if got := claim(t, q, 10); len(got) != 3 {
		t.Errorf("claim after reopen got %v, want all three", got)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := Open(Config{Path: path}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bMeta)).Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, schemaVersion+1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = Open(Config{Path: path}, zaptest.NewLogger(t))
	if err == nil {
		_ = q.Close()
		t.Fatal("opened a file with a newer schema")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %v does not say the schema is newer", err)
	}
}
