package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/nix"
)

// sizeConfig holds the input sizes and sample counts of one -size.
type sizeConfig struct {
	runs int

	hookSamples      int // sequential hooks per run
	hookParallel     int // hooks at once
	hookParallelEach int // hooks per concurrent runner

	enqConns, enqBatches, enqBatchSize int

	closurePaths             int
	closureRand, closureText int64

	bigSize int64

	dedupPaths int

	gcNarinfos int
	gcRuns     int // at most this many gc runs (each fills a bucket); 0: every run

	latencySamples int

	verifyPaths int // synthetic narinfos in the bucket verify checks
	// The WAN group: latencies of its two tiers (near, far), the bandwidth
	// of the simulated link in bit/s, the number of small paths, and the
	// fraction of requests throttled in wan-throttle.
	wanLatencies  [2]time.Duration
	wanBandwidth  int64
	wanSmallPaths int
	wanThrottle   float64
}

var sizes = map[string]sizeConfig{
	"small": {
		runs:        3,
		hookSamples: 20, hookParallel: 8, hookParallelEach: 5,
		enqConns: 8, enqBatches: 5, enqBatchSize: 64,
		closurePaths: 4, closureRand: 32 << 10, closureText: 32 << 10,
		bigSize:        8 << 20,
		dedupPaths:     200,
		gcNarinfos:     200,
		latencySamples: 4,
		verifyPaths:    300,
		wanLatencies:   [2]time.Duration{5 * time.Millisecond, 10 * time.Millisecond},
		wanBandwidth:   400_000_000,
		wanSmallPaths:  20,
		wanThrottle:    0.1,
	},
	"full": {
		runs:        5,
		hookSamples: 200, hookParallel: 8, hookParallelEach: 40,
		enqConns: 8, enqBatches: 100, enqBatchSize: 64,
		closurePaths: 40, closureRand: 4 << 20, closureText: 3 << 20,
		bigSize:        1 << 30,
		dedupPaths:     10000,
		gcNarinfos:     10000,
		gcRuns:         2,
		latencySamples: 20,
		verifyPaths:    10000,
		wanLatencies:   [2]time.Duration{30 * time.Millisecond, 100 * time.Millisecond},
		wanBandwidth:   400_000_000,
		wanSmallPaths:  300,
		wanThrottle:    0.2,
	},
}

// groups are the measures in the order they run. -only takes a group name
// or the name of one of its rows.
var groups = []struct {
	name string
	rows []string
	run  func(*env, context.Context) ([]Row, error)
}{
	{"hook", []string{"hook-up", "hook-up-8", "hook-down"}, (*env).measureHook},
	{"enqueue", []string{"enqueue"}, (*env).measureEnqueue},
	{"latency", []string{"latency"}, (*env).measureLatency},
	{"closure", []string{"upload-closure", "compression-cost"}, (*env).measureClosure},
	{"big", []string{"upload-big", "upload-big-rss"}, (*env).measureBig},
	{"dedup", []string{"dedup-cold", "dedup-warm"}, (*env).measureDedup},
	{"copy", []string{"copy-closure", "copy-big", "copy-big-rss", "copy-dedup"}, (*env).measureCopy},
	{"verify", []string{"verify", "verify-rss", "verify-nar-hashes"}, (*env).measureVerify},
	{"gc", []string{"gc-dry", "gc-real", "gc-rss"}, (*env).measureGC},
	{"wan", wanRowNames(), (*env).measureWAN},
}

// allRows lists every row name, in order.
func allRows() []string {
	var out []string
	for _, g := range groups {
		out = append(out, g.rows...)
	}
	return out
}

// options are the benchmark's settings, from flags.
type options struct {
	size    string
	runs    int // 0: the size's default
	only    []string
	workDir string // parent of the scratch directory; "" for $TMPDIR
	cfg     sizeConfig
}

// selected reports which groups run for only.
func selected(only []string) ([]int, error) {
	if len(only) == 0 {
		idx := make([]int, len(groups))
		for i := range groups {
			idx[i] = i
		}
		return idx, nil
	}
	var idx []int
	for _, name := range only {
		found := false
		for i, g := range groups {
			if g.name == name || slices.Contains(g.rows, name) {
				found = true
				if !slices.Contains(idx, i) {
					idx = append(idx, i)
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("bench: unknown measure %q (groups: %s; rows: %s)", name, groupNames(), strings.Join(allRows(), ", "))
		}
	}
	slices.Sort(idx)
	return idx, nil
}

func groupNames() string {
	var names []string
	for _, g := range groups {
		names = append(names, g.name)
	}
	return strings.Join(names, ", ")
}

// tools are the external programs the benchmark needs, found or started by
// the caller: a test passes testenv's, main its own.
type tools struct {
	nixEnv []string
	minio  func(dir string) (*testenv.MinIO, func(), error)
}

// run builds the binaries, starts MinIO, runs the selected measures and
// returns the report. Progress goes to log.
func run(ctx context.Context, o options, t tools, log io.Writer) (*Report, error) {
	cfg, ok := sizes[o.size]
	if !ok {
		return nil, fmt.Errorf("bench: unknown size %q (small or full)", o.size)
	}
	if o.runs <= 0 {
		o.runs = cfg.runs
	}
	o.cfg = cfg
	idx, err := selected(o.only)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(o.workDir, "nixs3q-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	e := &env{opts: o, dir: dir, nixEnv: t.nixEnv, log: log,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	rep := &Report{Size: o.size, Runs: o.runs, Started: time.Now()}
	e.logf("building nixs3q, nixs3q-hook and a no-op program")
	if e.bins, err = buildBinaries(ctx, filepath.Join(dir, "bin")); err != nil {
		return nil, err
	}
	if e.key, err = nix.GenerateKey("nixs3q-bench-1"); err != nil {
		return nil, err
	}
	e.keyFile = filepath.Join(dir, "signing-key.sec")
	if err := os.WriteFile(e.keyFile, []byte(e.key.String()), 0o600); err != nil {
		return nil, err
	}
	m, stopMinIO, err := t.minio(dir)
	if err != nil {
		return nil, err
	}
	defer stopMinIO()
	e.minio = m
	e.minioPID = findServer(m.Host)
	rep.Machine = machine(ctx, e)
	e.logf("%s, %d CPUs, %d MiB; %s; MinIO %s; size %s, %d runs; load average %s",
		rep.Machine.CPUModel, rep.Machine.CPUs, rep.Machine.MemoryMiB, rep.Machine.Nix, rep.Machine.MinIO, o.size, o.runs, rep.Machine.LoadBefore)

	for _, i := range idx {
		g := groups[i]
		start := time.Now()
		rows, err := g.run(e, ctx)
		if err != nil {
			return rep, fmt.Errorf("bench: %s: %w", g.name, err)
		}
		e.logf("%s took %.0f s (load average %s)", g.name, time.Since(start).Seconds(), loadAvg())
		rep.Rows = append(rep.Rows, rows...)
	}
	rep.Elapsed = time.Since(rep.Started).Seconds()
	rep.Machine.LoadAfter = loadAvg()
	return rep, nil
}

// errMissingTool reports a tool the benchmark cannot run without.
var errMissingTool = errors.New("bench: missing tool")
