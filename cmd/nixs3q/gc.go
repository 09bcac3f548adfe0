package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/gc"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

// killAfterEnv, when set to N, makes gc SIGKILL itself before its
// (N+1)-th deletion: the end-to-end tests interrupt gc with it at points
// they choose, the way a crash or an OOM kill would.
const killAfterEnv = "NIXS3Q_GC_KILL_AFTER"

// openStore opens the cache named by a --store flag for the commands that
// talk to the bucket directly (gc, pin, unpin, pins).
func openStore(ctx context.Context, raw string, log *zap.Logger) (uploader.Cache, error) {
	if raw == "" {
		return nil, &exitError{2, errors.New("--store is required, e.g. --store 's3://my-cache?region=eu-west-1' or --store file:///var/cache/nix")}
	}
	spec, err := storeurl.Parse(raw)
	if err != nil {
		return nil, &exitError{2, err}
	}
	cache, err := storeurl.Open(ctx, spec, log.Named("cache"))
	if err != nil {
		return nil, err
	}
	return cache, nil
}

func runGC(ctx context.Context, args []string) error {
	fs := newFlags("gc", "--store URL (--keep-days N | --keep-since TIME) [flags]")
	store := fs.String("store", "", "binary cache URL, as for the daemon (required)")
	keepDays := fs.Int("keep-days", -1, "keep narinfos written, and roots re-asserted, in the last N days, with their closures")
	keepSince := fs.String("keep-since", "", "keep what was written or re-asserted since this time (RFC 3339), instead of --keep-days")
	grace := fs.Duration("grace", 0, "scan, wait this long, scan again, and delete only what was dead both times (for writers that do not recheck, such as nix copy)")
	settle := fs.Duration("settle", gc.DefaultSettle, "wait after deleting, before looking for narinfos published meanwhile (0 only when nothing writes to the cache)")
	dryRun := fs.Bool("dry-run", false, "report what would be deleted; delete, write and lock nothing")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	storeDir := fs.String("store-dir", nix.DefaultStoreDir, "the Nix store directory of the cache")
	concurrency := fs.Int("concurrency", gc.DefaultConcurrency, "deletions in flight at once")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	now := time.Now()
	var cutoff time.Time
	switch {
	case *keepDays >= 0 && *keepSince != "":
		return &exitError{2, errors.New("give either --keep-days or --keep-since, not both")}
	case *keepDays >= 0:
		cutoff = now.Add(-time.Duration(*keepDays) * 24 * time.Hour)
	case *keepSince != "":
		t, err := time.Parse(time.RFC3339, *keepSince)
		if err != nil {
			return &exitError{2, fmt.Errorf("--keep-since: want an RFC 3339 time such as 2026-01-31T00:00:00Z: %w", err)}
		}
		cutoff = t
	default:
		return &exitError{2, errors.New("--keep-days N or --keep-since TIME is required: what was written or re-asserted since then is kept, with its closure")}
	}
	log, err := newLogger(*logLevel, "console")
	if err != nil {
		return &exitError{2, err}
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do if stderr is gone
	cfg := gc.Config{
		StoreDir:    *storeDir,
		Cutoff:      cutoff,
		Grace:       *grace,
		Settle:      *settle,
		DryRun:      *dryRun,
		Concurrency: *concurrency,
	}
	if err := cfg.Validate(); err != nil {
		return &exitError{2, err}
	}
	cache, err := openStore(ctx, *store, log)
	if err != nil {
		return err
	}
	if v := os.Getenv(killAfterEnv); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return &exitError{2, fmt.Errorf("%s=%q: want a number of deletions", killAfterEnv, v)}
		}
		var count atomic.Int64
		cfg.BeforeDelete = func(string) error {
			if count.Add(1) > n {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
			return nil
		}
	}
	pr := newProgressPrinter(os.Stderr)
	cfg.Progress = pr.update
	rep, err := gc.Run(ctx, cache, cfg, log)
	pr.finish()
	if rep != nil {
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				return err
			}
		} else {
			printReport(os.Stdout, rep)
		}
	}
	if errors.Is(err, gc.ErrLocked) {
		return &exitError{3, err}
	}
	return err
}

func printReport(w io.Writer, r *gc.Report) {
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
	}
	fmt.Fprintf(w, "cache:     %s\n", r.Store)
	fmt.Fprintf(w, "kept:      closures of %d recent narinfos (since %s), %d re-asserted roots, %d pinned paths\n",
		r.Recent, r.Cutoff.Format(time.RFC3339), r.Roots, r.Pinned)
	row := func(name string, c gc.Count) string {
		return fmt.Sprintf("%d %s (%s)", c.Objects, name, bytesString(c.Bytes))
	}
	fmt.Fprintf(w, "           %s, %s, %s\n", row("narinfos", r.Kept.NarInfos), row("NARs", r.Kept.Nars), row("listings", r.Kept.Listings))
	fmt.Fprintf(w, "%-10s %s, %s, %s, %d root records, %d unfinished uploads\n", verb+":", row("narinfos", r.Deleted.NarInfos),
		row("NARs", r.Deleted.Nars), row("listings", r.Deleted.Listings), r.Deleted.Roots.Objects, r.Deleted.Pending.Objects)
	if r.Restored > 0 || r.Retracted > 0 {
		fmt.Fprintf(w, "builders:  %d narinfos written back because new paths referenced them, %d new narinfos retracted (NAR deleted)\n", r.Restored, r.Retracted)
	}
	if r.Invalid > 0 {
		fmt.Fprintf(w, "warning:   %d narinfos cannot be read; kept\n", r.Invalid)
	}
	for _, p := range r.MissingPins {
		fmt.Fprintf(w, "warning:   pinned path not in the cache: %s\n", p)
	}
	fmt.Fprintf(w, "took:      %s, %d requests\n", time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond), r.Requests)
}

func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progressPrinter shows gc's progress: one rewritten line on a terminal,
// a plain line per phase and at most one every 10 seconds otherwise (CI
// logs).
type progressPrinter struct {
	w        io.Writer
	terminal bool
	mu       sync.Mutex
	phase    string
	last     time.Time
	shown    bool
}

func newProgressPrinter(f *os.File) *progressPrinter {
	p := &progressPrinter{w: f}
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		p.terminal = true
	}
	return p
}

var phaseNames = map[string]string{
	"scan": "scanning the cache", "grace": "waiting for the grace period", "rescan": "scanning again",
	"narinfos": "deleting narinfos", "settle": "waiting for builders to settle", "nars": "deleting NARs",
	"listings": "deleting listings", "roots": "deleting old root records", "done": "done",
}

func (p *progressPrinter) update(pr gc.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	name := phaseNames[pr.Phase]
	if name == "" {
		name = pr.Phase
	}
	line := name
	if pr.Total > 0 {
		line = fmt.Sprintf("%s: %d/%d", name, pr.Done, pr.Total)
	}
	now := time.Now()
	switch {
	case p.terminal:
		if pr.Phase == "done" {
			return
		}
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
	case pr.Phase != p.phase || now.Sub(p.last) >= 10*time.Second || (pr.Total > 0 && pr.Done == pr.Total):
		if pr.Phase == "done" {
			return
		}
		fmt.Fprintf(p.w, "gc: %s\n", line)
		p.last = now
	}
	p.phase = pr.Phase
}

func (p *progressPrinter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.terminal && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func runPin(ctx context.Context, args []string) error {
	fs := newFlags("pin", "--store URL [--name NAME] PATH...")
	store := fs.String("store", "", "binary cache URL (required)")
	name := fs.String("name", "", "pin all PATHs under this name, replacing what it pinned before (default: one pin per path, named after it)")
	storeDir := fs.String("store-dir", nix.DefaultStoreDir, "the Nix store directory")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return &exitError{2, errSilent}
	}
	var paths []string
	for _, a := range fs.Args() {
		p := resolvePath(a, *storeDir)
		sp, err := nix.ParseStorePath(*storeDir, p)
		if err != nil {
			return &exitError{2, fmt.Errorf("%s: %w", a, err)}
		}
		paths = append(paths, sp.String())
	}
	if *name != "" {
		if err := gc.CheckPinName(*name); err != nil {
			return &exitError{2, err}
		}
	}
	log, err := newLogger("warn", "console")
	if err != nil {
		return err
	}
	cache, err := openStore(ctx, *store, log)
	if err != nil {
		return err
	}
	// A pin of a path the cache does not have would keep nothing: say so.
	for _, p := range paths {
		sp, _ := nix.ParseStorePath(*storeDir, p)
		ok, err := cache.Has(ctx, sp.HashPart+".narinfo")
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s is not in the cache %s: push it first ('nixs3q push %s'), then pin it", p, cache, p)
		}
	}
	pins := []gc.Pin{{Name: *name, Paths: paths}}
	if *name == "" {
		pins = pins[:0]
		for _, p := range paths {
			sp, _ := nix.ParseStorePath(*storeDir, p)
			pins = append(pins, gc.Pin{Name: sp.Base(), Paths: []string{p}})
		}
	}
	for _, pin := range pins {
		if err := gc.PutPin(ctx, cache, *storeDir, pin); err != nil {
			return err
		}
		fmt.Printf("pinned %s: %s\n", pin.Name, strings.Join(pin.Paths, " "))
	}
	return nil
}

func runUnpin(ctx context.Context, args []string) error {
	fs := newFlags("unpin", "--store URL NAME...")
	store := fs.String("store", "", "binary cache URL (required)")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return &exitError{2, errSilent}
	}
	for _, n := range fs.Args() {
		if err := gc.CheckPinName(n); err != nil {
			return &exitError{2, fmt.Errorf("%w ('nixs3q pins' lists the names)", err)}
		}
	}
	log, err := newLogger("warn", "console")
	if err != nil {
		return err
	}
	cache, err := openStore(ctx, *store, log)
	if err != nil {
		return err
	}
	for _, n := range fs.Args() {
		if err := gc.DeletePin(ctx, cache, n); err != nil {
			return err
		}
		fmt.Printf("unpinned %s\n", n)
	}
	return nil
}

func runPins(ctx context.Context, args []string) error {
	fs := newFlags("pins", "--store URL [--json]")
	store := fs.String("store", "", "binary cache URL (required)")
	storeDir := fs.String("store-dir", nix.DefaultStoreDir, "the Nix store directory")
	asJSON := fs.Bool("json", false, "print the pins as JSON")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	log, err := newLogger("warn", "console")
	if err != nil {
		return err
	}
	cache, err := openStore(ctx, *store, log)
	if err != nil {
		return err
	}
	pins, err := gc.ListPins(ctx, cache, *storeDir)
	if err != nil {
		return err
	}
	if *asJSON {
		if pins == nil {
			pins = []gc.Pin{}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(pins)
	}
	for _, p := range pins {
		fmt.Printf("%s\t%s\t%s\n", p.Name, p.Created.UTC().Format(time.RFC3339), strings.Join(p.Paths, " "))
	}
	return nil
}
