package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
	"github.com/nixs3q/nixs3q/verify"
)

type verifyFlags struct {
	store, secretKeyFile, storeDir, nixBin, logLevel string
	compression                                      string
	compressionLevel                                 int
	trusted                                          listFlag
	json, checkNarHashes, repair, dryRun, deleteOrph bool
	concurrency, narConcurrency, workers, show       int
	grace, progressEvery                             time.Duration
}

const verifyUsage = "--store URL [--trusted-public-key NAME:BASE64 ...] [--json] [--check-nar-hashes] [--repair [--dry-run] [--delete-orphans] --secret-key-file FILE]"

// runVerify checks a cache and, with --repair, mends it. Exit status: 0
// clean (after the repair, with --repair), 1 problems, 2 unable to check.
func runVerify(ctx context.Context, args []string) error {
	fs := newFlags("verify", verifyUsage)
	var f verifyFlags
	fs.StringVar(&f.store, "store", "", "binary cache URL: s3://BUCKET?... or file:///DIR (required)")
	fs.Var(&f.trusted, "trusted-public-key", "a key narinfos must be signed by, NAME:BASE64 as in trusted-public-keys (repeatable or comma-separated; the public half of --secret-key-file is added); without any, signatures are not checked")
	fs.BoolVar(&f.json, "json", false, "print the report as JSON on stdout")
	fs.BoolVar(&f.checkNarHashes, "check-nar-hashes", false, "download and decompress every NAR and check FileHash, NarHash and NarSize (reads the whole cache)")
	fs.IntVar(&f.concurrency, "concurrency", verify.DefaultConcurrency, "narinfo reads and lookups in flight at once")
	fs.IntVar(&f.narConcurrency, "nar-concurrency", verify.DefaultNarConcurrency, "NARs downloaded at once with --check-nar-hashes")
	fs.DurationVar(&f.grace, "grace", verify.DefaultGrace, "unreferenced NARs and unfinished uploads younger than this are taken for uploads in progress: not reported, never deleted")
	fs.BoolVar(&f.repair, "repair", false, "mend the problems found: publish broken paths again from the local store, remove gone ones with everything depending on them")
	fs.BoolVar(&f.dryRun, "dry-run", false, "with --repair: print the plan, change nothing")
	fs.BoolVar(&f.deleteOrph, "delete-orphans", false, "with --repair: also delete orphan NARs and abort unfinished uploads older than --grace")
	fs.StringVar(&f.secretKeyFile, "secret-key-file", "", "with --repair: the signing key for paths published again (or the store URL's secret-key parameter)")
	fs.IntVar(&f.workers, "workers", 4, "with --repair: NARs uploaded at once")
	fs.StringVar(&f.compression, "compression", "", "with --repair: NAR compression of paths published again, zstd, xz or none (default: the store URL's compression parameter, else zstd)")
	fs.IntVar(&f.compressionLevel, "compression-level", 0, "with --repair: compression level (0: the compressor's default)")
	fs.StringVar(&f.storeDir, "store-dir", nix.DefaultStoreDir, "the Nix store directory")
	fs.StringVar(&f.nixBin, "nix", "nix", "with --repair: the nix command used to read store metadata")
	fs.IntVar(&f.show, "show", 20, "problems listed in the summary (0: all)")
	fs.DurationVar(&f.progressEvery, "progress-interval", 10*time.Second, "period of progress lines when stderr is not a terminal (0: none)")
	fs.StringVar(&f.logLevel, "log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	log, err := newLogger(f.logLevel, "console")
	if err != nil {
		return &exitError{2, err}
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do if stderr is gone
	return verifyCache(ctx, f, os.Stdout, os.Stderr, log)
}

// verifyCache is runVerify after flag parsing; out gets the report, errOut
// progress and messages.
func verifyCache(ctx context.Context, f verifyFlags, out, errOut io.Writer, log *zap.Logger) error {
	if f.store == "" {
		return &exitError{2, errors.New("--store is required, e.g. --store 's3://my-cache?region=eu-west-1' or --store file:///var/cache/nix")}
	}
	if (f.dryRun || f.deleteOrph) && !f.repair {
		return &exitError{2, errors.New("--dry-run and --delete-orphans go with --repair")}
	}
	spec, err := storeurl.Parse(f.store)
	if err != nil {
		return &exitError{2, err}
	}
	if f.compression != "" {
		spec.Format.Compression = f.compression
	}
	if f.compressionLevel != 0 {
		spec.Format.CompressionLevel = f.compressionLevel
	}
	if spec.Scheme == "file" {
		// Opening a local cache creates its directory; a typo must not.
		if fi, err := os.Stat(spec.Dir); err != nil || !fi.IsDir() {
			return &exitError{2, fmt.Errorf("no cache directory at %s", spec.Dir)}
		}
	}
	var keys []nix.PublicKey
	for _, k := range f.trusted {
		pk, err := nix.ParsePublicKey(k)
		if err != nil {
			return &exitError{2, fmt.Errorf("--trusted-public-key: %w", err)}
		}
		keys = append(keys, pk)
	}
	var secret *nix.SecretKey
	keyFile := f.secretKeyFile
	if keyFile == "" {
		keyFile = spec.SecretKeyFile
	}
	if f.repair {
		ucfg := uploader.Config{StoreDir: f.storeDir, Format: spec.Format, Concurrency: f.workers}
		if err := ucfg.Validate(); err != nil {
			return &exitError{2, err}
		}
	}
	if f.repair && !f.dryRun && keyFile == "" {
		return &exitError{2, errors.New("--repair needs --secret-key-file: paths published again are signed with it")}
	}
	if keyFile != "" {
		if secret, err = nix.LoadSecretKeyFile(keyFile); err != nil {
			return &exitError{2, err}
		}
		keys = append(keys, secret.Public())
	}
	cfg := verify.Config{
		StoreDir:       f.storeDir,
		TrustedKeys:    keys,
		Concurrency:    f.concurrency,
		CheckNarHashes: f.checkNarHashes,
		NarConcurrency: f.narConcurrency,
		Grace:          f.grace,
	}
	if f.grace == 0 {
		return &exitError{2, errors.New("--grace must be positive (use e.g. 1s to consider everything)")}
	}
	if err := cfg.Validate(); err != nil {
		return &exitError{2, err}
	}
	progress := newProgressLine(errOut, f.progressEvery)
	cfg.Progress = progress.update

	cache, err := storeurl.Open(ctx, spec, log.Named("cache"))
	if err != nil {
		return &exitError{2, err}
	}
	report, g, err := verify.Check(ctx, cache, cfg, log)
	progress.clear()
	if err != nil {
		return &exitError{2, fmt.Errorf("cannot check %s: %w", cache, err)}
	}
	if len(keys) == 0 && !f.json {
		fmt.Fprintln(errOut, "note: signatures not checked (give --trusted-public-key)")
	}
	if !f.repair {
		if err := writeReport(out, f, report); err != nil {
			return err
		}
		if !report.Clean() {
			return &exitError{1, errSilent}
		}
		return nil
	}
	return repairCache(ctx, f, spec, cache, g, report, secret, cfg, out, errOut, progress, log)
}

func writeReport(out io.Writer, f verifyFlags, r *verify.Report) error {
	if f.json {
		return r.WriteJSON(out)
	}
	return r.WriteText(out, f.show)
}

// repairOutput is the JSON document of verify --repair --json.
type repairOutput struct {
	Before *verify.Report       `json:"before"`
	Plan   *verify.Plan         `json:"plan"`
	Repair *verify.RepairResult `json:"repair,omitempty"`
	After  *verify.Report       `json:"after,omitempty"`
	DryRun bool                 `json:"dry_run"`
}

func repairCache(ctx context.Context, f verifyFlags, spec storeurl.Spec, cache uploader.Cache, g *scan.Graph, before *verify.Report,
	secret *nix.SecretKey, cfg verify.Config, out, errOut io.Writer, progress *progressLine, log *zap.Logger) error {
	src := &uploader.NixCLI{Nix: f.nixBin, StoreDir: f.storeDir}
	plan, err := verify.PlanRepair(ctx, before, g, verify.NixStore{Src: src, StoreDir: f.storeDir}, verify.RepairOptions{DeleteOrphans: f.deleteOrph})
	if err != nil {
		return &exitError{2, fmt.Errorf("cannot plan the repair: %w", err)}
	}
	doc := repairOutput{Before: before, Plan: plan, DryRun: f.dryRun}
	if !f.json {
		if err := before.WriteText(out, f.show); err != nil {
			return err
		}
		if before.Clean() {
			return nil
		}
		fmt.Fprintln(out)
		if err := plan.WriteText(out, f.show); err != nil {
			return err
		}
	}
	if f.dryRun || plan.Refused != "" || before.Clean() {
		if f.json {
			if err := writeJSON(out, doc); err != nil {
				return err
			}
		}
		if !before.Clean() {
			return &exitError{1, errSilent}
		}
		return nil
	}

	ucfg := uploader.Config{
		StoreDir:    f.storeDir,
		Format:      spec.Format,
		Concurrency: f.workers,
	}
	if err := ucfg.Validate(); err != nil {
		return &exitError{2, err}
	}
	up, err := uploader.New(ucfg, cache, src, nil, secret, log)
	if err != nil {
		return &exitError{2, err}
	}
	res, err := verify.Repair(ctx, cache, up, g, plan, cfg, log)
	progress.clear()
	doc.Repair = &res
	if !f.json {
		fmt.Fprintln(out)
		if werr := res.WriteText(out); werr != nil {
			return werr
		}
	}
	if err != nil {
		if f.json {
			writeJSON(out, doc) //nolint:errcheck // the repair's error is the one to report
		}
		return &exitError{2, fmt.Errorf("repair stopped (run it again to go on): %w", err)}
	}

	after, _, err := verify.Check(ctx, cache, cfg, log)
	progress.clear()
	if err != nil {
		return &exitError{2, fmt.Errorf("cannot check %s after the repair: %w", cache, err)}
	}
	doc.After = after
	if f.json {
		if err := writeJSON(out, doc); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(out, "\nafter the repair:")
		if err := after.WriteText(out, f.show); err != nil {
			return err
		}
	}
	if !after.Clean() {
		return &exitError{1, errSilent}
	}
	return nil
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// progressLine shows progress on stderr: a line rewritten in place on a
// terminal, a plain line every interval otherwise (CI logs).
type progressLine struct {
	w        io.Writer
	tty      bool
	every    time.Duration
	last     time.Time
	shown    bool
	lastText string
}

func newProgressLine(w io.Writer, every time.Duration) *progressLine {
	p := &progressLine{w: w, every: every, last: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// update is verify.Config.Progress; calls never overlap.
func (p *progressLine) update(pr verify.Progress) {
	text := progressText(pr)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", text)
		p.shown = true
		return
	}
	if p.every <= 0 || text == p.lastText {
		return
	}
	if time.Since(p.last) >= p.every || (pr.Last && time.Since(p.last) >= p.every/2) {
		fmt.Fprintln(p.w, text)
		p.last, p.lastText = time.Now(), text
	}
}

// clear removes the terminal line before other output.
func (p *progressLine) clear() {
	if p.tty && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

func progressText(pr verify.Progress) string {
	switch pr.Phase {
	case verify.PhaseScan:
		s := pr.Scan
		return fmt.Sprintf("scanning: %d objects listed, %d/%d narinfos read (%s)", s.Listed, s.Fetched, s.NarInfos, s.Elapsed.Truncate(time.Second))
	case verify.PhaseHash:
		return fmt.Sprintf("hashing NARs: %d/%d (%d MiB read)", pr.Done, pr.Total, pr.Bytes>>20)
	}
	return fmt.Sprintf("%s: %d/%d", pr.Phase, pr.Done, pr.Total)
}
