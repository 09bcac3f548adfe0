package wanproxy

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstream reads request bodies, serves GET /blob/N with N bytes, and
// records the Host header of each path and the number of requests.
func upstream(t *testing.T) (*httptest.Server, *sync.Map) {
	t.Helper()
	var seen sync.Map
	var count atomic.Int64
	seen.Store("count", &count)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		seen.Store(r.URL.Path, r.Host)
		switch r.Method {
		case http.MethodPut:
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header().Set("X-Got", fmt.Sprint(len(b)))
			w.WriteHeader(http.StatusOK)
		case http.MethodGet:
			var n int
			if _, err := fmt.Sscan(strings.TrimPrefix(r.URL.Path, "/blob/"), &n); err != nil {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.Write(bytes.Repeat([]byte("x"), n))
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "upstream"},
		{Config{Upstream: "https://127.0.0.1:1"}, "upstream"},
		{Config{Upstream: "http://10.0.0.1:9000"}, "loopback"},
		{Config{Upstream: "http://127.0.0.1:1", Latency: -1}, "latency"},
		{Config{Upstream: "http://127.0.0.1:1", Bandwidth: -1}, "bandwidth"},
		{Config{Upstream: "http://127.0.0.1:1", Throttle: 1}, "throttle"},
		{Config{Upstream: "http://127.0.0.1:1", Throttle: -0.1}, "throttle"},
		{Config{Upstream: "http://127.0.0.1:1", RetryAfter: -1}, "Retry-After"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{Upstream: "http://[::1]:9000", Latency: time.Millisecond, Throttle: 0.2}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestLatencyAndHost(t *testing.T) {
	up, seen := upstream(t)
	const latency = 60 * time.Millisecond
	s := start(t, Config{Upstream: up.URL, Latency: latency})
	req, _ := http.NewRequest(http.MethodHead, s.URL+"/bucket/key", nil)
	req.Host = "signed.example:1234"
	for range 3 {
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if took < latency {
			t.Errorf("request took %v, want at least the latency %v", took, latency)
		}
	}
	if h, _ := seen.Load("/bucket/key"); h != "signed.example:1234" {
		t.Errorf("upstream saw Host %v, want the client's", h)
	}
	if st := s.Stats(); st.Requests != 3 || st.Throttled != 0 {
		t.Errorf("stats %+v, want 3 requests, none throttled", st)
	}
}

func TestBandwidthSharedBothWays(t *testing.T) {
	up, _ := upstream(t)
	// 2 Mbit/s = 250,000 bytes/s; 16 KiB burst.
	s := start(t, Config{Upstream: up.URL, Bandwidth: 2_000_000, Burst: 16 << 10})
	const n = 125_000 // half a second alone
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		resp, err := http.Post(s.URL+"/put", "application/octet-stream", bytes.NewReader(make([]byte, n)))
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	})
	wg.Go(func() {
		resp, err := http.Get(s.URL + "/blob/125000")
		if err != nil {
			t.Error(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) != n {
			t.Errorf("got %d bytes, want %d", len(b), n)
		}
	})
	wg.Wait()
	took := time.Since(start)
	// 250,000 bytes through one 250,000 B/s bucket, less the burst: at
	// least 0.9 s; two separate buckets would take 0.5 s.
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("250,000 bytes both ways took %v, want about 1 s", took)
	}
	if st := s.Stats(); st.BytesUp != n || st.BytesDown != n {
		t.Errorf("stats %+v, want %d bytes each way", st, n)
	}
}

func TestThrottle(t *testing.T) {
	up, seen := upstream(t)
	s := start(t, Config{Upstream: up.URL, Throttle: 0.2, RetryAfter: 1500 * time.Millisecond, Seed: 7})
	const total = 500
	throttled := 0
	for i := range total {
		resp, err := http.Get(s.URL + "/bucket/obj" + string(rune('a'+i%26)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			continue
		}
		throttled++
		if ra := resp.Header.Get("Retry-After"); ra != "2" {
			t.Errorf("Retry-After %q, want 2 (1.5 s rounded up)", ra)
		}
		var e struct {
			Code string `xml:"Code"`
		}
		if err := xml.Unmarshal(body, &e); err != nil || e.Code != "SlowDown" {
			t.Errorf("throttle body %q (%v): want an S3 SlowDown error", body, err)
		}
	}
	if throttled < total/10 || throttled > total*3/10 {
		t.Errorf("%d of %d throttled, want about 20%%", throttled, total)
	}
	st := s.Stats()
	if st.Requests != total || st.Throttled != int64(throttled) {
		t.Errorf("stats %+v, want %d requests, %d throttled", st, total, throttled)
	}
	if c, _ := seen.Load("count"); c.(*atomic.Int64).Load() != total-int64(throttled) {
		t.Errorf("upstream saw %d requests, want the %d not throttled", c.(*atomic.Int64).Load(), total-throttled)
	}
	// The same seed throttles the same requests.
	s2 := start(t, Config{Upstream: up.URL, Throttle: 0.2, Seed: 7})
	again := 0
	for range total {
		resp, err := http.Head(s2.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			again++
		}
	}
	if again != throttled {
		t.Errorf("second run with the same seed throttled %d, first %d", again, throttled)
	}
}

func TestTokenBucket(t *testing.T) {
	now := time.Unix(0, 0)
	var slept []time.Duration
	b := newTokenBucket(1000, 100)
	b.now = func() time.Time { return now }
	b.last = now
	b.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	ctx := context.Background()
	b.take(ctx, 100) // the burst: no wait
	b.take(ctx, 500) // 500 bytes of debt: half a second
	now = now.Add(2 * time.Second)
	b.take(ctx, 50) // refilled to the burst only
	b.take(ctx, 100)
	want := []time.Duration{500 * time.Millisecond, 50 * time.Millisecond}
	if len(slept) != len(want) {
		t.Fatalf("slept %v, want %v", slept, want)
	}
	for i := range want {
		if d := slept[i] - want[i]; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("sleep %d = %v, want %v", i, slept[i], want[i])
		}
	}
}
