package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
)

// observer records ObserveRequest calls.
type observer struct {
	mu    sync.Mutex
	calls map[string]int // "op result" -> count
}

func (o *observer) ObserveRequest(op string, took time.Duration, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.calls == nil {
		o.calls = make(map[string]int)
	}
	o.calls[op+" "+result]++
}

func (o *observer) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls[key]
}

// Every third request is throttled: every call still succeeds (the SDK
// retries), the write limit shrinks, and the read limit grows from the
// lookups' successes.
func TestThrottlingShrinksTheLimit(t *testing.T) {
	setCredentials(t)
	fake := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		if isPut(r) && n%3 == 0 {
			s3Error(w, http.StatusServiceUnavailable, "SlowDown", map[string]string{"Retry-After": "0"})
			return true
		}
		return false
	})
	obs := &observer{}
	cfg := testConfig(fake.srv.URL)
	cfg.Observer = obs
	cfg.MaxWriteRequests = 64
	cfg.MaxAttempts = 10
	store := newStore(t, cfg)
	ctx := context.Background()
	before := store.Limits()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if err := putAndCheck(t, store, fmt.Sprintf("k/%d", i), 100); err != nil {
				t.Errorf("put %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	after := store.Limits()
	if after.Write.Decreases == 0 || after.Write.Limit >= before.Write.Limit+40 {
		t.Errorf("write limit %+v after throttling (from %+v): want decreases", after.Write, before.Write)
	}
	if after.Read.Decreases != 0 || after.Read.Limit <= before.Read.Limit {
		t.Errorf("read limit %+v (from %+v): want grown, never decreased", after.Read, before.Read)
	}
	if obs.count("PutObject throttled") == 0 || obs.count("PutObject ok") != 40 || obs.count("GetObject ok") != 40 {
		t.Errorf("observed %v, want 40 ok PutObject and GetObject and some throttled PutObject", obs.calls)
	}
	if ok, err := store.Has(ctx, "missing"); ok || err != nil {
		t.Fatalf("Has(missing) = %v, %v", ok, err)
	}
	if obs.count("HeadObject ok") != 1 {
		t.Errorf("a 404 answer to HeadObject observed as %v, want ok", obs.calls)
	}
	if st := store.Limits(); st.Read.InFlight != 0 || st.Write.InFlight != 0 {
		t.Errorf("slots still held after every call returned: %+v", st)
	}
}

// A request limit of one serialises requests without failing any.
func TestLimitOfOne(t *testing.T) {
	setCredentials(t)
	var mu sync.Mutex
	cur, peak := 0, 0
	fake := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		cur--
		mu.Unlock()
		return false
	})
	cfg := testConfig(fake.srv.URL)
	cfg.MaxReadRequests, cfg.MaxWriteRequests = 1, 1
	store := newStore(t, cfg)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if err := store.Put(context.Background(), fmt.Sprintf("k/%d", i), bytes.NewReader(nil), uploader.PutOptions{Size: 0}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if peak != 1 {
		t.Errorf("peak of %d writes in flight, want 1", peak)
	}
}
