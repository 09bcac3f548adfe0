package s3_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
)

// TestHonoursRetryAfter checks that the SDK waits at least as long as a 503
// SlowDown's Retry-After asks, and not when the header is absent.
func TestHonoursRetryAfter(t *testing.T) {
	setCredentials(t)
	for _, tc := range []struct {
		name       string
		retryAfter func() string
		minGap     time.Duration
		maxGap     time.Duration
	}{
		{"with Retry-After", func() string { return "1" }, time.Second, 5 * time.Second},
		// HTTP dates have whole seconds: 3s ahead is at least 2s ahead.
		{"with HTTP date", func() string { return time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat) }, time.Second, 5 * time.Second},
		{"without Retry-After", func() string { return "" }, 0, 900 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
				if isPut(r) && n == 1 {
					header := map[string]string{}
					if v := tc.retryAfter(); v != "" {
						header["Retry-After"] = v
					}
					s3Error(w, http.StatusServiceUnavailable, "SlowDown", header)
					return true
				}
				return false
			})
			if err := putAndCheck(t, newStore(t, testConfig(fake.srv.URL)), "x.narinfo", 100); err != nil {
				t.Fatal(err)
			}
			var puts []time.Time
			for _, r := range fake.log() {
				if r.method == http.MethodPut {
					puts = append(puts, r.at)
				}
			}
			if len(puts) != 2 {
				t.Fatalf("%d PUT requests, want 2", len(puts))
			}
			if gap := puts[1].Sub(puts[0]); gap < tc.minGap || gap > tc.maxGap {
				t.Errorf("retry came %v after the 503, want between %v and %v", gap, tc.minGap, tc.maxGap)
			}
		})
	}
}

// TestRetryAfterReachesClassify checks that once the SDK gives up, the
// error still carries the server's Retry-After for the queue, both when the
// attempts run out and when the delay is too long to wait out in the SDK.
func TestRetryAfterReachesClassify(t *testing.T) {
	setCredentials(t)
	for _, tc := range []struct {
		name       string
		retryAfter string
		want       time.Duration
		attempts   int
	}{
		{"attempts exhausted", "1", time.Second, 2},
		{"longer than MaxRetryAfter", "120", 120 * time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
				if isPut(r) {
					s3Error(w, http.StatusServiceUnavailable, "SlowDown", map[string]string{"Retry-After": tc.retryAfter})
					return true
				}
				return false
			})
			cfg := testConfig(fake.srv.URL)
			cfg.MaxAttempts = 2
			cfg.MaxRetryAfter = 5 * time.Second
			start := time.Now()
			err := putAndCheck(t, newStore(t, cfg), "x.narinfo", 100)
			if err == nil {
				t.Fatal("Put succeeded against a server that always throttles")
			}
			if elapsed := time.Since(start); elapsed > 4*time.Second {
				t.Errorf("Put took %v", elapsed)
			}
			if !errors.Is(err, uploader.ErrThrottled) {
				t.Errorf("Put = %v, want an error matching %v", err, uploader.ErrThrottled)
			}
			c := uploader.Classify(err)
			if c.Permanent || c.RetryAfter != tc.want || !strings.Contains(c.Reason, "throttling") {
				t.Errorf("Classify(%v) = %+v, want transient throttling with RetryAfter %v", err, c, tc.want)
			}
			if n := fake.count(func(r request) bool { return r.method == http.MethodPut }); n != tc.attempts {
				t.Errorf("%d PUT attempts, want %d", n, tc.attempts)
			}
		})
	}
}
