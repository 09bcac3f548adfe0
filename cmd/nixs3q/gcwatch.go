package main

import (
	"context"
	"errors"
	"io/fs"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/gc"
	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/uploader"
)

// gcWatchInterval is how often the daemon reads the report of the last gc
// from the cache: one small GET, so that `status` and the metrics show
// runs made on any machine.
const gcWatchInterval = 10 * time.Minute

// gcWatch keeps the latest gc report of the cache.
type gcWatch struct {
	cache uploader.Cache
	log   *zap.Logger
	last  atomic.Pointer[hook.GCSummary]
}

// run reads the report now and every gcWatchInterval until ctx is done.
func (w *gcWatch) run(ctx context.Context) {
	for {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r, err := gc.ReadReport(rctx, w.cache)
		cancel()
		switch {
		case err == nil:
			w.last.Store(summarize(r))
		case errors.Is(err, fs.ErrNotExist):
		case ctx.Err() == nil:
			w.log.Debug("could not read the last gc report", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(gcWatchInterval):
		}
	}
}

func (w *gcWatch) get() *hook.GCSummary { return w.last.Load() }

func summarize(r *gc.Report) *hook.GCSummary {
	del, kept := r.Deleted.Total(), r.Kept.Total()
	return &hook.GCSummary{
		Finished: r.Finished, Seconds: r.Seconds, Error: r.Error,
		DeletedObjects: del.Objects, DeletedBytes: del.Bytes,
		KeptObjects: kept.Objects, KeptBytes: kept.Bytes,
	}
}

var (
	gcFinishedDesc = prometheus.NewDesc("nixs3q_gc_last_finished_timestamp_seconds", "When the cache's last gc finished (Unix time).", nil, nil)
	gcSecondsDesc  = prometheus.NewDesc("nixs3q_gc_last_duration_seconds", "How long the cache's last gc took.", nil, nil)
	gcDeletedDesc  = prometheus.NewDesc("nixs3q_gc_last_deleted_objects", "Objects the cache's last gc deleted.", nil, nil)
	gcDelBytesDesc = prometheus.NewDesc("nixs3q_gc_last_deleted_bytes", "Bytes the cache's last gc deleted.", nil, nil)
	gcKeptDesc     = prometheus.NewDesc("nixs3q_gc_last_kept_bytes", "Bytes the cache's last gc kept.", nil, nil)
	gcFailedDesc   = prometheus.NewDesc("nixs3q_gc_last_failed", "1 when the cache's last gc stopped early, else 0.", nil, nil)
)

func (w *gcWatch) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{gcFinishedDesc, gcSecondsDesc, gcDeletedDesc, gcDelBytesDesc, gcKeptDesc, gcFailedDesc} {
		ch <- d
	}
}

func (w *gcWatch) Collect(ch chan<- prometheus.Metric) {
	s := w.get()
	if s == nil {
		return
	}
	failed := 0.0
	if s.Error != "" {
		failed = 1
	}
	for _, m := range []struct {
		d *prometheus.Desc
		v float64
	}{
		{gcFinishedDesc, float64(s.Finished.UnixNano()) / 1e9}, {gcSecondsDesc, s.Seconds},
		{gcDeletedDesc, float64(s.DeletedObjects)}, {gcDelBytesDesc, float64(s.DeletedBytes)},
		{gcKeptDesc, float64(s.KeptBytes)}, {gcFailedDesc, failed},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.GaugeValue, m.v)
	}
}
