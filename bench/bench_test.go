package main

import (
	"bytes"
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

// TestSmallBenchmark runs the whole benchmark at -size small against real
// Nix and MinIO and checks that every measure produced sane figures and
// that nixs3q's uploads landed (each run's narinfos were read back and
// verified). Targets are not asserted: small inputs on a busy test machine
// say nothing about them.
func TestSmallBenchmark(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real Nix and MinIO for about a minute")
	}
	nixEnv := testenv.RequireNix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log bytes.Buffer
	tl := tools{nixEnv: nixEnv, minio: func(string) (*testenv.MinIO, func(), error) {
		return testenv.StartMinIO(t), func() {}, nil
	}}
	rep, err := run(ctx, options{size: "small", workDir: t.TempDir()}, tl, &log)
	if err != nil {
		t.Fatalf("benchmark failed: %v\nlog:\n%s", err, log.String())
	}
	cfg := sizes["small"]
	if rep.Runs != cfg.runs {
		t.Errorf("report has %d runs, want %d", rep.Runs, cfg.runs)
	}
	var names []string
	for _, r := range rep.Rows {
		names = append(names, r.Name)
		if len(r.Runs) != cfg.runs {
			t.Errorf("%s: %d run figures, want %d", r.Name, len(r.Runs), cfg.runs)
		}
		for _, v := range append(slices.Clone(r.Runs), r.Value) {
			if !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("%s: figure %v is not a positive number", r.Name, v)
			}
		}
		if r.BaselineName != "" && (!(r.Baseline > 0) || !(r.Ratio > 0) || len(r.BRuns) != cfg.runs) {
			t.Errorf("%s: baseline %q has median %v, ratio %v, %d runs", r.Name, r.BaselineName, r.Baseline, r.Ratio, len(r.BRuns))
		}
		if r.Unit == "ms" && r.Value > 5000 || r.Unit == "s" && r.Value > 60 {
			t.Errorf("%s: %v %s is implausibly slow for small inputs", r.Name, r.Value, r.Unit)
		}
	}
	if want := allRows(); !slices.Equal(names, want) {
		t.Errorf("rows %v, want %v", names, want)
	}
	// Every upload of nixs3q was read back: narinfo, signature, NAR.
	wantVerified := map[string]int{
		"upload-closure":  cfg.closurePaths * cfg.runs,
		"upload-big":      cfg.runs,
		"latency":         cfg.latencySamples * cfg.runs,
		"dedup-cold":      cfg.dedupPaths + 1,
		"copy-closure":    cfg.closurePaths * cfg.runs,
		"copy-big":        cfg.runs,
		"copy-dedup":      cfg.dedupPaths + 1,
		"verify":          cfg.verifyPaths * cfg.runs,
		"wan-near-small":  (cfg.wanSmallPaths + 1) * cfg.runs,
		"wan-far-closure": cfg.closurePaths * cfg.runs,
		"wan-throttle":    (cfg.wanSmallPaths + 1) * cfg.runs,
	}
	for _, r := range rep.Rows {
		if want, ok := wantVerified[r.Name]; ok && r.Verified != want {
			t.Errorf("%s: %d narinfos verified, want %d", r.Name, r.Verified, want)
		}
	}
	var table bytes.Buffer
	printTable(&table, rep)
	for _, name := range allRows() {
		if !bytes.Contains(table.Bytes(), []byte(name)) {
			t.Errorf("table lacks %s:\n%s", name, table.String())
		}
	}
	t.Logf("\n%s", table.String())
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		xs   []float64
		p    float64
		want float64
	}{
		{nil, 50, 0},
		{[]float64{7}, 50, 7},
		{[]float64{3, 1, 2}, 50, 2},
		{[]float64{4, 1, 3, 2}, 50, 2},
		{[]float64{5, 1, 4, 2, 3}, 100, 5},
		{[]float64{5, 1, 4, 2, 3}, 0, 1},
		{[]float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, 99, 100},
		{[]float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, 90, 90},
	}
	for _, tt := range tests {
		orig := slices.Clone(tt.xs)
		if got := percentile(tt.xs, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.xs, tt.p, got, tt.want)
		}
		if !slices.Equal(tt.xs, orig) {
			t.Errorf("percentile reordered its input: %v", tt.xs)
		}
	}
}

func TestSelected(t *testing.T) {
	tests := []struct {
		only    []string
		want    []string // group names
		wantErr bool
	}{
		{nil, []string{"hook", "enqueue", "latency", "closure", "big", "dedup", "copy", "verify", "gc", "wan"}, false},
		{[]string{"wan-far-dedup-warm"}, []string{"wan"}, false},
		{[]string{"dedup-warm"}, []string{"dedup"}, false},
		{[]string{"big", "hook-down", "upload-big-rss"}, []string{"hook", "big"}, false},
		{[]string{"nope"}, nil, true},
	}
	for _, tt := range tests {
		idx, err := selected(tt.only)
		if (err != nil) != tt.wantErr {
			t.Errorf("selected(%v) error %v, want error %v", tt.only, err, tt.wantErr)
			continue
		}
		var got []string
		for _, i := range idx {
			got = append(got, groups[i].name)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("selected(%v) = %v, want %v", tt.only, got, tt.want)
		}
	}
}

func TestNewRowRatio(t *testing.T) {
	r := newRow("g", "n", "s", []float64{2, 4, 3}, []float64{6, 6, 9}, "base")
	if r.Value != 3 || r.Baseline != 6 || r.Ratio != 0.5 {
		t.Errorf("row %+v: want value 3, baseline 6, ratio 0.5", r)
	}
	r = newRow("g", "n", "s", []float64{1}, nil, "")
	if r.Baseline != 0 || r.Ratio != 0 {
		t.Errorf("row without baseline has baseline %v ratio %v", r.Baseline, r.Ratio)
	}
}
