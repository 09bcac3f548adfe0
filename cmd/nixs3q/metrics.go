package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/metrics"
)

// metricsTimeouts bound what one client of the metrics server can hold:
// a scraper that stops reading, or a connection that sends nothing, is cut
// off instead of keeping a goroutine and a descriptor for ever.
type metricsTimeouts struct {
	readHeader, read, write, idle time.Duration
}

var defaultMetricsTimeouts = metricsTimeouts{
	readHeader: 5 * time.Second,
	read:       10 * time.Second,
	write:      30 * time.Second,
	idle:       60 * time.Second,
}

// serveMetrics serves /metrics on addr until the returned stop is called.
func serveMetrics(addr string, m *metrics.Metrics, log *zap.Logger) (stop func(), err error) {
	return serveMetricsWith(addr, m, log, defaultMetricsTimeouts)
}

func serveMetricsWith(addr string, m *metrics.Metrics, log *zap.Logger, to metricsTimeouts) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: to.readHeader,
		ReadTimeout:       to.read,
		WriteTimeout:      to.write,
		IdleTimeout:       to.idle,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	log.Info("serving metrics", zap.String("addr", "http://"+l.Addr().String()+"/metrics"))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
