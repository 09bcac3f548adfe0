// Package metrics exposes nixs3q's Prometheus metrics. Queue depth and the
// cumulative upload counters are read from the queue at scrape time, so they
// survive restarts and never disagree with `nixs3q status`; latencies and
// per-reason retry and failure counts are measured in the process.
package metrics

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nixs3q/nixs3q/queue"
)

// StatsFunc reads the queue's statistics.
type StatsFunc func() (queue.Stats, error)

// Metrics holds the collectors of one daemon. Its methods are safe for
// concurrent use. A nil *Metrics ignores every observation.
type Metrics struct {
	reg            *prometheus.Registry
	uploadSeconds  prometheus.Histogram
	publishLatency prometheus.Histogram
	retries        *prometheus.CounterVec
	failures       *prometheus.CounterVec
	narBytesRead   prometheus.Counter
	closurePaths   prometheus.Counter
	requestSeconds *prometheus.HistogramVec
}

// New builds the metrics of a daemon whose queue statistics stats reads.
func New(stats StatsFunc) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		uploadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nixs3q_upload_duration_seconds",
			Help:    "Time to publish the missing part of one queued path's closure, from claim to last narinfo.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14),
		}),
		publishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nixs3q_hook_to_published_seconds",
			Help:    "Time from a path's durable enqueue (the hook's acknowledgement) to its narinfo being published.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14),
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nixs3q_retries_total",
			Help: "Failed attempts that were scheduled for a retry, by reason.",
		}, []string{"reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nixs3q_failures_total",
			Help: "Paths moved to the failed list, by reason.",
		}, []string{"reason"}),
		narBytesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nixs3q_nar_bytes_total",
			Help: "Uncompressed NAR bytes uploaded by this process.",
		}),
		closurePaths: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nixs3q_closure_paths_checked_total",
			Help: "Closure members checked against the cache by this process.",
		}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nixs3q_cache_request_duration_seconds",
			Help:    "Duration of each request attempt to the cache (every retry counts), by operation (HeadObject, PutObject, UploadPart, ListObjectsV2, ...) and result (ok, throttled, error).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"operation", "result"}),
	}
	reg.MustRegister(m.uploadSeconds, m.publishLatency, m.retries, m.failures, m.narBytesRead, m.closurePaths, m.requestSeconds)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(&queueCollector{stats: stats})
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Register adds a collector of another part of the daemon (the last gc
// report, for one). It fails when c's metrics clash with registered ones.
func (m *Metrics) Register(c prometheus.Collector) error {
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// Uploaded records a finished queue item: how long the upload took, and how
// long since the item was enqueued.
func (m *Metrics) Uploaded(took time.Duration, enqueued time.Time, narBytes int64, checked int) {
	if m == nil {
		return
	}
	m.uploadSeconds.Observe(took.Seconds())
	if !enqueued.IsZero() {
		m.publishLatency.Observe(time.Since(enqueued).Seconds())
	}
	if narBytes > 0 {
		m.narBytesRead.Add(float64(narBytes))
	}
	m.closurePaths.Add(float64(checked))
}

// ObserveRequest records one request attempt to the cache: its operation,
// duration and result. It implements the S3 backend's Observer.
func (m *Metrics) ObserveRequest(op string, took time.Duration, result string) {
	if m == nil {
		return
	}
	m.requestSeconds.WithLabelValues(op, result).Observe(took.Seconds())
}

// WatchRequestLimits exports the cache's adaptive request limits (reads and
// writes), read from limits at scrape time, as nixs3q_cache_request_limit.
// Call it at most once.
func (m *Metrics) WatchRequestLimits(limits func() (read, write int)) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&limitCollector{limits: limits})
}

// limitCollector reads the request limits at scrape time.
type limitCollector struct {
	limits func() (read, write int)
}

var limitDesc = prometheus.NewDesc("nixs3q_cache_request_limit",
	"Current adaptive limit of cache requests in flight, by class (read, write): grows while the server answers, halves when it throttles.",
	[]string{"class"}, nil)

func (c *limitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- limitDesc }

func (c *limitCollector) Collect(ch chan<- prometheus.Metric) {
	read, write := c.limits()
	ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(read), "read")
	ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(write), "write")
}

// Failed records a failed attempt; final says the item moved to the failed list.
func (m *Metrics) Failed(reason string, final bool) {
	if m == nil {
		return
	}
	if reason == "" {
		reason = "other"
	}
	if final {
		m.failures.WithLabelValues(reason).Inc()
	} else {
		m.retries.WithLabelValues(reason).Inc()
	}
}

// queueCollector reads the queue at scrape time.
type queueCollector struct {
	stats StatsFunc
}

var (
	depthDesc = prometheus.NewDesc("nixs3q_queue_items", "Queue items by state.", []string{"state"}, nil)
	oldest    = prometheus.NewDesc("nixs3q_queue_oldest_pending_seconds", "Age of the oldest pending or in-flight item.", nil, nil)
	counters  = []struct {
		desc *prometheus.Desc
		get  func(queue.Stats) int64
	}{
		{prometheus.NewDesc("nixs3q_uploaded_paths_total", "Store paths uploaded (NAR and narinfo published).", nil, nil), func(s queue.Stats) int64 { return s.Uploaded }},
		{prometheus.NewDesc("nixs3q_uploaded_bytes_total", "Compressed NAR bytes uploaded.", nil, nil), func(s queue.Stats) int64 { return s.UploadedBytes }},
		{prometheus.NewDesc("nixs3q_skipped_paths_total", "Closure members skipped because the cache already had them.", nil, nil), func(s queue.Stats) int64 { return s.Skipped }},
		{prometheus.NewDesc("nixs3q_dropped_paths_total", "Queued paths dropped because they vanished (garbage-collected) before upload.", nil, nil), func(s queue.Stats) int64 { return s.Dropped }},
		{prometheus.NewDesc("nixs3q_completed_items_total", "Queue items completed.", nil, nil), func(s queue.Stats) int64 { return s.Completed }},
		{prometheus.NewDesc("nixs3q_failed_items_total", "Queue items that ever moved to the failed list.", nil, nil), func(s queue.Stats) int64 { return s.FailedTotal }},
		{prometheus.NewDesc("nixs3q_excluded_items_total", "Queued paths the upload filters (--exclude, --max-nar-size) kept out.", nil, nil), func(s queue.Stats) int64 { return s.Excluded }},
		{prometheus.NewDesc("nixs3q_held_back_items_total", "Queued paths not published because they refer to a path the filters keep out.", nil, nil), func(s queue.Stats) int64 { return s.HeldBack }},
		{prometheus.NewDesc("nixs3q_realisations_total", "Realisations of derivation outputs published.", nil, nil), func(s queue.Stats) int64 { return s.Realisations }},
		{prometheus.NewDesc("nixs3q_build_logs_total", "Build logs uploaded.", nil, nil), func(s queue.Stats) int64 { return s.Logs }},
	}
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- depthDesc
	ch <- oldest
	for _, k := range counters {
		ch <- k.desc
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(depthDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(st.Pending), "pending")
	ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(st.Leased), "in_flight")
	ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(st.Failed), "failed")
	age := 0.0
	if !st.OldestPending.IsZero() {
		age = time.Since(st.OldestPending).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(oldest, prometheus.GaugeValue, age)
	for _, k := range counters {
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.CounterValue, float64(k.get(st)))
	}
}
