package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
)

// Count is a number of objects and their bytes.
type Count struct {
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

func (c *Count) add(size int64) { c.Objects++; c.Bytes += size }

// Tally counts objects by kind.
type Tally struct {
	NarInfos Count `json:"narinfos"`
	Nars     Count `json:"nars"`
	Listings Count `json:"listings"`
	Roots    Count `json:"roots"` // re-assertion records
	Pending  Count `json:"pending"`
}

// Total sums every kind.
func (t Tally) Total() Count {
	var c Count
	for _, k := range []Count{t.NarInfos, t.Nars, t.Listings, t.Roots, t.Pending} {
		c.Objects += k.Objects
		c.Bytes += k.Bytes
	}
	return c
}

// Report says what one run did (or, with DryRun, would do).
type Report struct {
	Store    string    `json:"store"`
	DryRun   bool      `json:"dry_run"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Seconds  float64   `json:"seconds"`
	Cutoff   time.Time `json:"cutoff"`

	// Kept counts what stays: narinfos and NARs of kept closures (and
	// everything else listed but not deleted).
	Kept Tally `json:"kept"`
	// Deleted counts what was deleted (DryRun: what would be).
	Deleted Tally `json:"deleted"`

	// Seeds of the kept closures.
	Recent int `json:"recent"` // narinfos modified at or after the cutoff
	Roots  int `json:"roots"`  // roots re-asserted at or after the cutoff, present in the cache
	Pinned int `json:"pinned"` // pinned paths present in the cache
	// Invalid narinfos cannot be read; they are kept, their references
	// unknown.
	Invalid int `json:"invalid"`
	// Restored narinfos were written back because a narinfo published
	// during the run referenced them; Retracted ones were published during
	// the run with a NAR the run had deleted, and were deleted (see the
	// package documentation).
	Restored  int `json:"restored"`
	Retracted int `json:"retracted"`
	// Missing pins name paths that are not in the cache.
	MissingPins []string `json:"missing_pins,omitempty"`
	// Requests is the number of requests the run sent to the cache.
	Requests int64 `json:"requests"`
	// Error is set when the run stopped early; what it counts was done.
	Error string `json:"error,omitempty"`
}

// WriteReport stores r as the report of the last run.
func WriteReport(ctx context.Context, cache uploader.Cache, r *Report) error {
	body, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("gc: report: %w", err)
	}
	if err := cache.Put(ctx, ReportKey, bytes.NewReader(body), uploader.PutOptions{ContentType: "application/json", Size: int64(len(body))}); err != nil {
		return fmt.Errorf("gc: write report: %w", err)
	}
	return nil
}

// ReadReport returns the report of the last run; an error wrapping
// fs.ErrNotExist when gc never ran on cache.
func ReadReport(ctx context.Context, cache uploader.Cache) (*Report, error) {
	rc, err := cache.Get(ctx, ReportKey)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("gc: no report: %w", err)
		}
		return nil, fmt.Errorf("gc: read report: %w", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("gc: read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("gc: read report: %w", err)
	}
	return &r, nil
}
