package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/gc"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan/scantest"
	"github.com/nixs3q/nixs3q/uploader/s3"
)

// measureGC fills a bucket with cfg.gcNarinfos synthetic narinfos (with
// their NARs): ten generations of 1/10 each, every path referring to two
// paths of a shared base set and to a path of the previous generation; the
// first five generations are uploaded before the cutoff, the last five
// after, and a pin keeps one old root. Then `nixs3q gc --dry-run` and a
// real `nixs3q gc` run on it as separate processes: time, requests (from
// the report) and peak RSS (getrusage).
func (e *env) measureGC(ctx context.Context) ([]Row, error) {
	n := e.opts.cfg.gcNarinfos
	runs := e.opts.runs
	if c := e.opts.cfg.gcRuns; c > 0 {
		runs = min(runs, c) // each run fills a bucket of its own
	}
	var dry, real, dryRSS, realRSS []float64
	var notes []string
	for r := range runs {
		bucket, err := e.newBucket(ctx, "gc")
		if err != nil {
			return nil, err
		}
		cutoff, fillTook, err := e.fillGCBucket(ctx, bucket, n, r)
		if err != nil {
			return nil, err
		}
		d, err := e.runGC(ctx, bucket, cutoff, true)
		if err != nil {
			return nil, err
		}
		g, err := e.runGC(ctx, bucket, cutoff, false)
		if err != nil {
			return nil, err
		}
		if g.rep.Deleted.NarInfos.Objects != d.rep.Deleted.NarInfos.Objects || g.rep.Deleted.NarInfos.Objects == 0 {
			return nil, fmt.Errorf("bench: gc deleted %d narinfos, the dry run predicted %d", g.rep.Deleted.NarInfos.Objects, d.rep.Deleted.NarInfos.Objects)
		}
		e.logf("gc run %d: bucket of %d narinfos filled in %.1f s; dry run %.2f s, %d requests, %.0f MiB; real %.2f s, %d requests, %.0f MiB; deleted %d narinfos, %d NARs",
			r+1, n, fillTook.Seconds(), d.took.Seconds(), d.rep.Requests, mib(d.rss), g.took.Seconds(), g.rep.Requests, mib(g.rss),
			g.rep.Deleted.NarInfos.Objects, g.rep.Deleted.Nars.Objects)
		dry, real = append(dry, secs(d.took)), append(real, secs(g.took))
		dryRSS, realRSS = append(dryRSS, mib(d.rss)), append(realRSS, mib(g.rss))
		notes = append(notes, fmt.Sprintf("run %d: dry %d requests, real %d requests, %d narinfos and %d NARs deleted of %d",
			r+1, d.rep.Requests, g.rep.Requests, g.rep.Deleted.NarInfos.Objects, g.rep.Deleted.Nars.Objects, n))
	}
	dr := newRow("gc", "gc-dry", "s", dry, nil, "")
	dr.Target = "report only"
	dr.Met = true
	dr.Note = fmt.Sprintf("nixs3q gc --dry-run of a bucket of %d narinfos and NARs; peak RSS %.0f MiB; %s", n, median(dryRSS), strings.Join(notes, "; "))
	rr := newRow("gc", "gc-real", "s", real, nil, "")
	rr.Target = "report only"
	rr.Met = true
	rr.Note = fmt.Sprintf("nixs3q gc --settle 0 (lock settle 2 s included); peak RSS %.0f MiB", median(realRSS))
	mr := newRow("gc", "gc-rss", "MiB", realRSS, nil, "")
	mr.Target = "≤ 1024 MiB at 100,000 narinfos"
	mr.Met = true
	return []Row{dr, rr, mr}, nil
}

type gcRun struct {
	took time.Duration
	rss  int64
	rep  gc.Report
}

// runGC runs the nixs3q binary's gc on bucket.
func (e *env) runGC(ctx context.Context, bucket string, cutoff time.Time, dryRun bool) (gcRun, error) {
	args := []string{"gc", "--store", e.s3URL(bucket), "--keep-since", cutoff.Format(time.RFC3339Nano), "--settle", "0", "--json"}
	if dryRun {
		args = append(args, "--dry-run")
	}
	cmd := exec.CommandContext(ctx, e.bins.nixs3q, args...)
	cmd.Env = e.daemonEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return gcRun{}, fmt.Errorf("bench: nixs3q gc: %w\n%s", err, errOut.String())
	}
	var res gcRun
	res.took = took
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.rss = ru.Maxrss << 10 // kilobytes on Linux
	}
	if err := json.Unmarshal(out.Bytes(), &res.rep); err != nil {
		return gcRun{}, fmt.Errorf("bench: gc report: %w", err)
	}
	return res, nil
}

// fillGCBucket writes the synthetic cache and returns the cutoff between
// its old and new halves.
func (e *env) fillGCBucket(ctx context.Context, bucket string, n, seed int) (time.Time, time.Duration, error) {
	for _, kv := range e.minio.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	cache, err := s3.New(ctx, s3.Config{Bucket: bucket, Endpoint: e.minio.Host, Scheme: "http", Region: e.minio.Region}, zap.NewNop())
	if err != nil {
		return time.Time{}, 0, err
	}
	w := &scantest.Writer{Cache: cache}
	if err := w.PutCacheInfo(ctx); err != nil {
		return time.Time{}, 0, err
	}
	gens := 10
	per := n / gens
	nbase := max(1, per/5)
	base := make([]*scantest.Path, nbase)
	for i := range base {
		base[i] = scantest.NewPath(nix.DefaultStoreDir, fmt.Sprintf("base-%d", i), []byte(fmt.Sprintf("base %d %d", seed, i)))
	}
	publish := func(paths []*scantest.Path) error {
		var wg sync.WaitGroup
		errs := make(chan error, len(paths))
		next := make(chan *scantest.Path)
		for range 32 {
			wg.Go(func() {
				for p := range next {
					if _, err := w.Publish(ctx, p); err != nil {
						errs <- err
					}
				}
			})
		}
		for _, p := range paths {
			next <- p
		}
		close(next)
		wg.Wait()
		close(errs)
		return <-errs
	}
	start := time.Now()
	if err := publish(base); err != nil {
		return time.Time{}, 0, err
	}
	var cutoff time.Time
	var prev []*scantest.Path
	var pinned string
	for g := range gens {
		var cur []*scantest.Path
		for i := range per - boolInt(g == 0)*nbase {
			refs := []*scantest.Path{base[i%nbase], base[(i*7+3)%nbase]}
			if len(prev) > 0 {
				refs = append(refs, prev[i%len(prev)])
			}
			cur = append(cur, scantest.NewPath(nix.DefaultStoreDir, fmt.Sprintf("gen%d-%d", g, i), []byte(fmt.Sprintf("%d %d %d", seed, g, i)), refs...))
		}
		if g == gens/2 {
			time.Sleep(1100 * time.Millisecond)
			cutoff = time.Now()
			time.Sleep(1100 * time.Millisecond)
		}
		if err := publish(cur); err != nil {
			return time.Time{}, 0, err
		}
		if g == 1 {
			pinned = cur[0].StorePath
		}
		// Each generation refers only to a tenth of the previous one.
		prev = cur[:max(1, len(cur)/10)]
	}
	if err := gc.PutPin(ctx, cache, nix.DefaultStoreDir, gc.Pin{Name: "bench", Paths: []string{pinned}}); err != nil {
		return time.Time{}, 0, err
	}
	return cutoff, time.Since(start), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
