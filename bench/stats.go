package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one line of the final table: a measure of nixs3q, its baseline
// when it has one, and the target it is judged by.
type Row struct {
	Name     string  `json:"name"`
	Group    string  `json:"group"`
	Unit     string  `json:"unit"`
	Value    float64 `json:"value"`              // median over the runs
	Baseline float64 `json:"baseline,omitempty"` // median over the runs; 0 when none
	// BaselineName says what the baseline is ("no-op Go binary", "nix copy").
	BaselineName string `json:"baseline_name,omitempty"`
	// Ratio is Value / Baseline, 0 without a baseline.
	Ratio  float64   `json:"ratio,omitempty"`
	Runs   []float64 `json:"runs"`                    // per-run values of nixs3q
	BRuns  []float64 `json:"baseline_runs,omitempty"` // per-run baseline values
	Target string    `json:"target"`
	Met    bool      `json:"met"`
	// Verified counts narinfos of nixs3q uploads read back and checked
	// (path, signature, NAR present) in this measure, over all runs.
	Verified int    `json:"verified,omitempty"`
	Note     string `json:"note,omitempty"`
}

// Report is the whole output of one benchmark run.
type Report struct {
	Size    string    `json:"size"`
	Runs    int       `json:"runs"`
	Started time.Time `json:"started"`
	Elapsed float64   `json:"elapsed_seconds"`
	Machine Machine   `json:"machine"`
	Rows    []Row     `json:"rows"`
}

// Machine describes where the numbers were taken.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryMiB int64  `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	Nix       string `json:"nix"`
	MinIO     string `json:"minio"`
	// LoadBefore and LoadAfter are /proc/loadavg at the start and the end:
	// the machine may be shared, and its other work slows every measure.
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
}

// median of xs; 0 for none. xs is not modified.
func median(xs []float64) float64 {
	return percentile(xs, 50)
}

// percentile p (0..100) of xs by the nearest-rank method; 0 for none.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func secs(d time.Duration) float64 { return d.Seconds() }

// newRow fills Value, Baseline and Ratio from per-run figures.
func newRow(group, name, unit string, runs, baseRuns []float64, baseName string) Row {
	r := Row{Group: group, Name: name, Unit: unit, Runs: runs, BRuns: baseRuns, BaselineName: baseName}
	r.Value = median(runs)
	if len(baseRuns) > 0 {
		r.Baseline = median(baseRuns)
		if r.Baseline != 0 {
			r.Ratio = r.Value / r.Baseline
		}
	}
	return r
}

func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case v == 0:
		return "-"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// printTable writes the rows as an aligned text table.
func printTable(w io.Writer, rep *Report) {
	m := rep.Machine
	fmt.Fprintf(w, "%s × %d, %d MiB, %s, %s, MinIO %s; load average %s before, %s after; %.0f s\n",
		m.CPUModel, m.CPUs, m.MemoryMiB, m.Kernel, m.Nix, m.MinIO, m.LoadBefore, m.LoadAfter, rep.Elapsed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "measure\tunit\tnixs3q\tbaseline\tratio\ttarget\tmet\n")
	for _, r := range rep.Rows {
		base := fmtNum(r.Baseline)
		if r.BaselineName != "" && r.Baseline != 0 {
			base += " (" + r.BaselineName + ")"
		}
		ratio := "-"
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		met := "no"
		if r.Met {
			met = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Unit, fmtNum(r.Value), base, ratio, r.Target, met)
	}
	tw.Flush()
	var notes []string
	for _, r := range rep.Rows {
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("  %s: %s", r.Name, r.Note))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "notes (medians of %d runs; ratio = nixs3q / baseline):\n%s\n", rep.Runs, strings.Join(notes, "\n"))
	}
}

func writeJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
