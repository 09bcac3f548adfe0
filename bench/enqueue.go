package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/nixs3q/nixs3q/hook"
)

// measureEnqueue measures acknowledged, durable enqueues per second over
// the socket: many connections, each sending batches back to back.
func (e *env) measureEnqueue(ctx context.Context) ([]Row, error) {
	cfg := e.opts.cfg
	total := cfg.enqConns * cfg.enqBatches * cfg.enqBatchSize
	storeDir := filepath.Join(e.dir, "enqueue-store")
	paths, err := fakeStore(storeDir, "enqueue", total)
	if err != nil {
		return nil, err
	}
	var rates []float64
	for r := range e.opts.runs {
		rate, err := e.runEnqueue(ctx, r, paths, storeDir)
		if err != nil {
			return nil, err
		}
		e.logf("enqueue run %d: %.0f paths/s", r+1, rate)
		rates = append(rates, rate)
	}
	row := newRow("enqueue", "enqueue", "paths/s", rates, nil, "")
	row.Target = "≥ 20000 paths/s"
	row.Met = row.Value >= 20000
	row.Note = fmt.Sprintf("%d connections × %d batches of %d new paths, each acked after its fsynced commit",
		cfg.enqConns, cfg.enqBatches, cfg.enqBatchSize)
	return []Row{row}, nil
}

func (e *env) runEnqueue(ctx context.Context, r int, paths []string, storeDir string) (float64, error) {
	cfg := e.opts.cfg
	d, err := e.idleDaemon(ctx, filepath.Join(e.dir, fmt.Sprintf("enqueue-%d", r)), storeDir)
	if err != nil {
		return 0, err
	}
	defer d.stop()
	clients := make([]*hook.Client, cfg.enqConns)
	for i := range clients {
		c, err := hook.Dial(ctx, d.socket)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		clients[i] = c
	}
	per := cfg.enqBatches * cfg.enqBatchSize
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		mine := paths[i*per : (i+1)*per]
		wg.Go(func() {
			for b := 0; b < len(mine); b += cfg.enqBatchSize {
				batch := mine[b : b+cfg.enqBatchSize]
				res, err := c.Enqueue(ctx, hook.EnqueueRequest{Paths: batch, Source: "push"})
				if err == nil && res.Added != len(batch) {
					err = fmt.Errorf("bench: enqueue answered %+v", res)
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	st, err := d.status(ctx)
	if err != nil {
		return 0, err
	}
	if got := st.Pending + st.InFlight; got != len(paths) {
		return 0, fmt.Errorf("bench: the daemon holds %d paths after %d acknowledged", got, len(paths))
	}
	return float64(len(paths)) / took.Seconds(), d.stop()
}
