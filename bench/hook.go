package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nixs3q/nixs3q/hook"
)

// The hook and enqueue measures need a daemon that accepts paths but whose
// uploads do not compete for the CPU: it runs with one worker, a store
// directory of empty files named like store paths, a file:// cache, and a
// "nix" that sleeps, so the one item a worker claims holds it and every
// other path stays pending. Only the durable, acknowledged enqueue is timed.

// idleDaemon starts such a daemon for the fake store at storeDir.
func (e *env) idleDaemon(ctx context.Context, dir, storeDir string) (*daemon, error) {
	script := filepath.Join(e.dir, "sleeping-nix")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec /bin/sleep 3600\n"), 0o755); err != nil {
		return nil, err
	}
	return e.startDaemon(ctx, dir, daemonOpts{
		store:    "file://" + filepath.Join(dir, "cache"),
		storeDir: storeDir,
		nix:      script,
		workers:  1,
	})
}

// timeProcess runs bin with env and returns its wall time from start to
// exit, failing on a non-zero exit or on any stderr output when quiet is set.
func timeProcess(bin string, env []string, quiet bool) (time.Duration, string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return 0, stderr.String(), fmt.Errorf("bench: %s: %w: %s", filepath.Base(bin), err, stderr.String())
	}
	if quiet && stderr.Len() > 0 {
		return 0, stderr.String(), fmt.Errorf("bench: %s printed %q", filepath.Base(bin), stderr.String())
	}
	return took, stderr.String(), nil
}

func hookEnv(socket, stateDir, path string) []string {
	return []string{hook.SocketEnv + "=" + socket, hook.StateDirEnv + "=" + stateDir, "OUT_PATHS=" + path, "DRV_PATH="}
}

// hookRun is the outcome of one run of the hook measures.
type hookRun struct {
	hookMedian, noopMedian float64 // ms, sequential
	hookP99, noopP99       float64 // ms, concurrent
	hookMax                float64 // ms, concurrent
	spoolMedian            float64 // ms, daemon down
	// What the hook's time is made of: an in-process durable enqueue over a
	// fresh connection, and one fdatasync on the state directory's disk.
	rttMedian, fsyncMedian float64 // ms
}

func (e *env) runHook(ctx context.Context, r int, paths []string, storeDir string) (hookRun, error) {
	var out hookRun
	cfg := e.opts.cfg
	d, err := e.idleDaemon(ctx, filepath.Join(e.dir, fmt.Sprintf("hook-%d", r)), storeDir)
	if err != nil {
		return out, err
	}
	defer d.stop()
	next := 0
	take := func() string { p := paths[next]; next++; return p }

	// Warm the page cache and the daemon's connection path.
	for range 5 {
		if _, _, err := timeProcess(e.bins.hook, hookEnv(d.socket, d.stateDir, take()), true); err != nil {
			return out, err
		}
		if _, _, err := timeProcess(e.bins.noop, hookEnv(d.socket, d.stateDir, ""), false); err != nil {
			return out, err
		}
	}
	var hookT, noopT []float64
	for range cfg.hookSamples {
		t, _, err := timeProcess(e.bins.hook, hookEnv(d.socket, d.stateDir, take()), true)
		if err != nil {
			return out, err
		}
		hookT = append(hookT, ms(t))
		t, _, err = timeProcess(e.bins.noop, hookEnv(d.socket, d.stateDir, ""), false)
		if err != nil {
			return out, err
		}
		noopT = append(noopT, ms(t))
	}
	out.hookMedian, out.noopMedian = median(hookT), median(noopT)

	// 8 at once, as parallel builds finish together.
	conc := func(bin string, pathFor func() string) ([]float64, error) {
		var mu sync.Mutex
		var all []float64
		var firstErr error
		var wg sync.WaitGroup
		jobs := make([][]string, cfg.hookParallel)
		for i := range jobs {
			for range cfg.hookParallelEach {
				jobs[i] = append(jobs[i], pathFor())
			}
		}
		for _, job := range jobs {
			wg.Go(func() {
				for _, p := range job {
					t, _, err := timeProcess(bin, hookEnv(d.socket, d.stateDir, p), bin == e.bins.hook)
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					all = append(all, ms(t))
					mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		return all, firstErr
	}
	hc, err := conc(e.bins.hook, take)
	if err != nil {
		return out, err
	}
	nc, err := conc(e.bins.noop, func() string { return "" })
	if err != nil {
		return out, err
	}
	out.hookP99, out.noopP99, out.hookMax = percentile(hc, 99), percentile(nc, 99), percentile(hc, 100)

	var rtt []float64
	for range cfg.hookSamples {
		t, err := enqueueRTT(ctx, d.socket, take())
		if err != nil {
			return out, err
		}
		rtt = append(rtt, ms(t))
	}
	out.rttMedian = median(rtt)
	if out.fsyncMedian, err = fsyncLatency(d.stateDir, cfg.hookSamples); err != nil {
		return out, err
	}

	// Every acknowledged path must be in the queue.
	st, err := d.status(ctx)
	if err != nil {
		return out, err
	}
	if got := st.Pending + st.InFlight; got != next {
		return out, fmt.Errorf("bench: the daemon holds %d paths after %d acknowledged hooks", got, next)
	}
	if err := d.stop(); err != nil {
		return out, err
	}

	// Daemon down: the hook spools.
	down := filepath.Join(e.dir, fmt.Sprintf("hook-down-%d", r))
	socket := filepath.Join(down, "absent.sock")
	var spoolT []float64
	for range cfg.hookSamples {
		t, msg, err := timeProcess(e.bins.hook, hookEnv(socket, down, paths[0]), false)
		if err != nil {
			return out, err
		}
		if !bytes.Contains([]byte(msg), []byte("spooled")) {
			return out, fmt.Errorf("bench: hook with the daemon down printed %q, want a spool", msg)
		}
		spoolT = append(spoolT, ms(t))
	}
	files, err := hook.ListSpool(hook.SpoolDir(down))
	if err != nil {
		return out, err
	}
	if len(files) != cfg.hookSamples {
		return out, fmt.Errorf("bench: %d spool files after %d spooling hooks", len(files), cfg.hookSamples)
	}
	out.spoolMedian = median(spoolT)
	return out, nil
}

// measureHook runs the hook measures and returns their rows.
func (e *env) measureHook(ctx context.Context) ([]Row, error) {
	cfg := e.opts.cfg
	perRun := 5 + 2*cfg.hookSamples + cfg.hookParallel*cfg.hookParallelEach
	storeDir := filepath.Join(e.dir, "hook-store")
	paths, err := fakeStore(storeDir, "hook", perRun)
	if err != nil {
		return nil, err
	}
	var runs []hookRun
	for r := range e.opts.runs {
		hr, err := e.runHook(ctx, r, paths, storeDir)
		if err != nil {
			return nil, err
		}
		e.logf("hook run %d: hook %.2f ms, no-op %.2f ms; 8 at once p99 %.2f ms (no-op %.2f); spool %.2f ms; in-process enqueue %.2f ms, fdatasync %.2f ms",
			r+1, hr.hookMedian, hr.noopMedian, hr.hookP99, hr.noopP99, hr.spoolMedian, hr.rttMedian, hr.fsyncMedian)
		runs = append(runs, hr)
	}
	pick := func(f func(hookRun) float64) []float64 {
		var xs []float64
		for _, hr := range runs {
			xs = append(xs, f(hr))
		}
		return xs
	}
	up := newRow("hook", "hook-up", "ms", pick(func(h hookRun) float64 { return h.hookMedian }),
		pick(func(h hookRun) float64 { return h.noopMedian }), "no-op Go binary")
	up.Target = "median ≤ 2 ms and ≤ 2× no-op"
	up.Met = up.Value <= 2 && up.Ratio <= 2
	up.Note = fmt.Sprintf("process start to exit after the daemon's fsynced ack; %d sequential hooks per run; "+
		"of which a durable enqueue over a fresh connection, in-process: %.2f ms; one fdatasync: %.2f ms",
		cfg.hookSamples, median(pick(func(h hookRun) float64 { return h.rttMedian })), median(pick(func(h hookRun) float64 { return h.fsyncMedian })))

	par := newRow("hook", "hook-up-8", "ms", pick(func(h hookRun) float64 { return h.hookP99 }),
		pick(func(h hookRun) float64 { return h.noopP99 }), "no-op Go binary")
	par.Target = "p99 ≤ 10 ms"
	par.Met = par.Value <= 10
	par.Note = fmt.Sprintf("p99 of %d hooks, %d at once; worst single hook %.2f ms",
		cfg.hookParallel*cfg.hookParallelEach, cfg.hookParallel, median(pick(func(h hookRun) float64 { return h.hookMax })))

	down := newRow("hook", "hook-down", "ms", pick(func(h hookRun) float64 { return h.spoolMedian }), nil, "")
	down.Target = "median ≤ 20 ms, exit 0"
	down.Met = down.Value <= 20
	down.Note = "daemon socket absent: the hook writes and fsyncs a spool file, exits 0"
	return []Row{up, par, down}, nil
}

// enqueueRTT times what the hook does once started: dial the socket,
// enqueue one path, read the durable acknowledgement.
func enqueueRTT(ctx context.Context, socket, path string) (time.Duration, error) {
	start := time.Now()
	c, err := hook.Dial(ctx, socket)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_, err = c.Enqueue(ctx, hook.EnqueueRequest{Paths: []string{path}, Source: "hook"})
	took := time.Since(start)
	if err != nil {
		err = fmt.Errorf("bench: enqueue: %w", err)
	}
	return took, err
}

// fsyncLatency is the median time of n fdatasyncs after rewriting one 4 KiB
// page of a file in dir: the floor of any durable acknowledgement there
// (a bbolt commit takes two).
func fsyncLatency(dir string, n int) (float64, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	var ts []float64
	for i := range n {
		page[0] = byte(i)
		if _, err := f.WriteAt(page, int64(i%16)*4096); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
		ts = append(ts, ms(time.Since(start)))
	}
	return median(ts), nil
}
