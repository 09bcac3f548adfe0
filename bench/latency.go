package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

// measureLatency runs the hook for one new small path at a time and polls
// the bucket over HTTP, as a Nix client would, until its narinfo is there:
// the time from the hook's exit (durable ack) to a visible narinfo.
func (e *env) measureLatency(ctx context.Context) ([]Row, error) {
	cfg := e.opts.cfg
	paths, err := e.smallInputs(ctx, "latency", e.opts.size, cfg.latencySamples)
	if err != nil {
		return nil, err
	}
	var medians, worst []float64
	verified := 0
	for r := range e.opts.runs {
		bucket, err := e.newBucket(ctx, "latency")
		if err != nil {
			return nil, err
		}
		d, err := e.startDaemon(ctx, filepath.Join(e.dir, fmt.Sprintf("latency-%d", r)), daemonOpts{store: e.s3URL(bucket)})
		if err != nil {
			return nil, err
		}
		var lat []float64
		for _, p := range paths {
			l, err := e.latencyOne(ctx, d, bucket, p)
			if err != nil {
				d.stop()
				return nil, err
			}
			lat = append(lat, ms(l))
			time.Sleep(20 * time.Millisecond) // let the daemon settle, as between builds
		}
		if err := d.stop(); err != nil {
			return nil, err
		}
		n, err := e.verifyNarinfos(ctx, bucket, paths, true)
		if err != nil {
			return nil, err
		}
		verified += n
		e.logf("latency run %d: median %.0f ms, worst %.0f ms", r+1, median(lat), percentile(lat, 100))
		medians, worst = append(medians, median(lat)), append(worst, percentile(lat, 100))
	}
	row := newRow("latency", "latency", "ms", medians, nil, "")
	row.Target = "median ≤ 300 ms"
	row.Met = row.Value <= 300
	row.Verified = verified
	row.Note = fmt.Sprintf("hook exit → narinfo GET 200, %d small paths per run, polled every %s; worst %.0f ms",
		cfg.latencySamples, pollInterval, median(worst))
	return []Row{row}, nil
}

func (e *env) latencyOne(ctx context.Context, d *daemon, bucket, path string) (time.Duration, error) {
	sp, err := nix.ParseStorePath(nix.DefaultStoreDir, path)
	if err != nil {
		return 0, err
	}
	url := e.httpURL(bucket) + "/" + sp.HashPart + ".narinfo"
	if _, err := timeProcessEnv(e.bins.hook, hookEnv(d.socket, d.stateDir, path)); err != nil {
		return 0, err
	}
	acked := time.Now()
	deadline := acked.Add(60 * time.Second)
	for {
		_, ok, err := httpGet(ctx, e.http, url)
		if err != nil {
			return 0, err
		}
		if ok {
			return time.Since(acked), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("bench: narinfo of %s not visible 60s after the hook's ack: %s", path, d.logTail())
		}
		time.Sleep(pollInterval)
	}
}

// timeProcessEnv runs bin quietly (see timeProcess).
func timeProcessEnv(bin string, env []string) (time.Duration, error) {
	t, _, err := timeProcess(bin, env, true)
	return t, err
}
