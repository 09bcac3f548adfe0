package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/uploader"
)

// fakeCache answers EnsureCacheInfo from a list of results, the last one
// repeating, after an optional delay.
type fakeCache struct {
	mu      sync.Mutex
	results []error
	delay   time.Duration
	calls   int
}

func (f *fakeCache) EnsureCacheInfo(ctx context.Context) error {
	f.mu.Lock()
	i := min(f.calls, len(f.results)-1)
	f.calls++
	err, delay := f.results[i], f.delay
	f.mu.Unlock()
	select {
	case <-time.After(delay):
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fakeReviver records RetryTransient calls.
type fakeReviver struct {
	mu     sync.Mutex
	sinces []time.Time
}

func (f *fakeReviver) RetryTransient(since time.Time) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sinces = append(f.sinces, since)
	return 1, nil
}

func (f *fakeReviver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sinces)
}

func newTestHealth(t *testing.T, c *fakeCache, r *fakeReviver) *cacheHealth {
	h := newCacheHealth(c, r, zaptest.NewLogger(t))
	h.slowAfter, h.recheckMin, h.recheckMax = 200*time.Millisecond, 10*time.Millisecond, 20*time.Millisecond
	return h
}

func TestCacheHealthStart(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:9000: connection refused")
	for _, tc := range []struct {
		name     string
		cache    *fakeCache
		unusable bool
		note     string // right after start
	}{
		{"reachable", &fakeCache{results: []error{nil}}, false, ""},
		{"another store", &fakeCache{results: []error{fmt.Errorf("check: %w", uploader.ErrStoreDirMismatch)}}, true, ""},
		{"unreachable", &fakeCache{results: []error{refused, refused, nil}}, false, "cache"},
		{"slow", &fakeCache{results: []error{nil}, delay: 400 * time.Millisecond}, false, "cache unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHealth(t, tc.cache, &fakeReviver{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := h.start(ctx)
			if got := errors.Is(err, ErrCacheUnusable); got != tc.unusable || (err != nil && !tc.unusable) {
				t.Fatalf("start: %v, want unusable=%v", err, tc.unusable)
			}
			if tc.unusable && !errors.Is(err, uploader.ErrStoreDirMismatch) {
				t.Fatalf("start: %v does not wrap the cause", err)
			}
			if note := h.note(); (tc.note == "") != (note == "") {
				t.Fatalf("note %q, want one mentioning %q", note, tc.note)
			}
			// The background check clears the note once the cache answers.
			deadline := time.Now().Add(5 * time.Second)
			for h.note() != "" && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if note := h.note(); note != "" {
				t.Fatalf("note %q after the cache answered", note)
			}
			cancel()
			h.wait()
		})
	}
}

// The background check stops when its context is cancelled, even while the
// cache never answers.
func TestCacheHealthRecheckStops(t *testing.T) {
	h := newTestHealth(t, &fakeCache{results: []error{errors.New("connection reset by peer")}}, &fakeReviver{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if note := h.note(); note == "" {
		t.Fatal("no note while the cache fails")
	}
	cancel()
	done := make(chan struct{})
	go func() { h.wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the background check did not stop")
	}
}

// Items that used up their attempts on transient errors are revived by the
// next success, once; failures before start-up count as such.
func TestCacheHealthRevivesAfterOutage(t *testing.T) {
	r := &fakeReviver{}
	h := newTestHealth(t, &fakeCache{results: []error{nil}}, r)
	h.succeeded() // failures recorded before start-up
	if r.count() != 1 {
		t.Fatalf("first success: %d revivals, want 1", r.count())
	}
	h.succeeded()
	if r.count() != 1 {
		t.Fatalf("a success without failures in between revived again")
	}
	h.failedTransiently()
	before := time.Now()
	h.succeeded()
	if r.count() != 2 || r.sinces[1].After(before) || r.sinces[1].IsZero() {
		t.Fatalf("revivals %v, want a second one since the previous success", r.sinces)
	}
}
