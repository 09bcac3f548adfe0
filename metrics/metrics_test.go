package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/queue"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMetricsExposeQueueAndObservations(t *testing.T) {
	stats := queue.Stats{Pending: 3, Leased: 2, Failed: 1, Uploaded: 10, UploadedBytes: 4096, Skipped: 7, Dropped: 1,
		Completed: 9, FailedTotal: 2, OldestPending: time.Now().Add(-time.Minute),
		Excluded: 4, HeldBack: 5, Realisations: 6, Logs: 8}
	m := New(func() (queue.Stats, error) { return stats, nil })
	m.Uploaded(2*time.Second, time.Now().Add(-3*time.Second), 1000, 4)
	m.Failed("throttled", false)
	m.Failed("throttled", false)
	m.Failed("access_denied", true)
	m.Failed("", true)
	out := scrape(t, m)
	for _, want := range []string{
		`nixs3q_queue_items{state="pending"} 3`,
		`nixs3q_queue_items{state="in_flight"} 2`,
		`nixs3q_queue_items{state="failed"} 1`,
		"nixs3q_uploaded_paths_total 10",
		"nixs3q_uploaded_bytes_total 4096",
		"nixs3q_skipped_paths_total 7",
		"nixs3q_dropped_paths_total 1",
		"nixs3q_completed_items_total 9",
		"nixs3q_failed_items_total 2",
		"nixs3q_excluded_items_total 4",
		"nixs3q_held_back_items_total 5",
		"nixs3q_realisations_total 6",
		"nixs3q_build_logs_total 8",
		`nixs3q_retries_total{reason="throttled"} 2`,
		`nixs3q_failures_total{reason="access_denied"} 1`,
		`nixs3q_failures_total{reason="other"} 1`,
		"nixs3q_upload_duration_seconds_count 1",
		"nixs3q_hook_to_published_seconds_count 1",
		"nixs3q_nar_bytes_total 1000",
		"nixs3q_closure_paths_checked_total 4",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "nixs3q_queue_oldest_pending_seconds ") {
			line = l
		}
	}
	age, err := strconv.ParseFloat(strings.TrimPrefix(line, "nixs3q_queue_oldest_pending_seconds "), 64)
	if err != nil || age < 59 || age > 70 {
		t.Errorf("oldest pending age %q, want about 60s", line)
	}
}

func TestMetricsSurviveAQueueError(t *testing.T) {
	m := New(func() (queue.Stats, error) { return queue.Stats{}, errors.New("queue: closed") })
	m.Failed("network", false)
	out := scrape(t, m)
	if !strings.Contains(out, `nixs3q_retries_total{reason="network"} 1`) {
		t.Errorf("other metrics lost when the queue fails:\n%s", out)
	}
	var nilMetrics *Metrics
	nilMetrics.Uploaded(time.Second, time.Now(), 1, 1) // must not panic
	nilMetrics.Failed("x", true)
}

func TestRequestMetrics(t *testing.T) {
	m := New(func() (queue.Stats, error) { return queue.Stats{}, nil })
	m.ObserveRequest("HeadObject", 30*time.Millisecond, "ok")
	m.ObserveRequest("HeadObject", 40*time.Millisecond, "ok")
	m.ObserveRequest("PutObject", 100*time.Millisecond, "throttled")
	read, write := 64, 16
	m.WatchRequestLimits(func() (int, int) { return read, write })
	out := scrape(t, m)
	for _, want := range []string{
		`nixs3q_cache_request_duration_seconds_count{operation="HeadObject",result="ok"} 2`,
		`nixs3q_cache_request_duration_seconds_count{operation="PutObject",result="throttled"} 1`,
		`nixs3q_cache_request_limit{class="read"} 64`,
		`nixs3q_cache_request_limit{class="write"} 16`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	write = 8
	if out := scrape(t, m); !strings.Contains(out, `nixs3q_cache_request_limit{class="write"} 8`) {
		t.Errorf("limit not read at scrape time")
	}
	var nilM *Metrics
	nilM.ObserveRequest("HeadObject", time.Millisecond, "ok")
	nilM.WatchRequestLimits(func() (int, int) { return 0, 0 })
}
