package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/progress"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

type copyFlags struct {
	to, secretKeyFile, compression, storeDir, nixBin string
	logLevel, logFormat                              string
	jobs, compressionLevel, maxAttempts              int
	skipSignedBy                                     listFlag
	progress                                         progressFlags
}

// runCopy publishes the closures of the named paths in this process: the
// daemon's pipeline without the socket, the queue or a daemon. It exits 0
// only when every closure is published, 1 when any failed, and 2 on bad
// flags or paths, before touching the cache.
func runCopy(ctx context.Context, args []string) error {
	fs := newFlags("copy", "--to URL [--secret-key-file FILE] [flags] PATH...")
	var f copyFlags
	fs.StringVar(&f.to, "to", "", "binary cache URL, as for the daemon's --store (required)")
	fs.StringVar(&f.secretKeyFile, "secret-key-file", "", "Nix signing key file (NAME:BASE64); may also be given as the URL's secret-key parameter")
	fs.IntVar(&f.jobs, "jobs", uploader.DefaultConcurrency, "NARs uploaded at once")
	fs.StringVar(&f.compression, "compression", "", "NAR compression: zstd, xz or none (default: the URL's compression parameter, else zstd)")
	fs.IntVar(&f.compressionLevel, "compression-level", 0, "compression level (0: the compressor's default)")
	fs.IntVar(&f.maxAttempts, "max-attempts", 4, "attempts per path before giving up on transient errors")
	fs.Var(&f.skipSignedBy, "skip-signed-by", "do not upload closure members signed by this upstream cache key (repeatable)")
	fs.StringVar(&f.storeDir, "store-dir", nix.DefaultStoreDir, "the Nix store directory")
	fs.StringVar(&f.nixBin, "nix", "nix", "the nix command used to read store metadata")
	f.progress.register(fs)
	fs.StringVar(&f.logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "console", "console or json")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return &exitError{2, errSilent}
	}
	if f.maxAttempts < 1 {
		return &exitError{2, errors.New("--max-attempts must be at least 1")}
	}
	disp, _, err := f.progress.display("nixs3q copy: ")
	if err != nil {
		return &exitError{2, err}
	}
	var logOut io.Writer = os.Stderr
	if disp != nil {
		logOut = disp
	}
	log, err := newLoggerTo(f.logLevel, f.logFormat, logOut)
	if err != nil {
		return &exitError{2, err}
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do if stderr is gone

	roots, err := copyRoots(f.storeDir, fs.Args())
	if err != nil {
		return &exitError{2, err}
	}
	tracker := progress.NewTracker()
	up, err := copyUploader(ctx, f, tracker, log)
	if err != nil {
		return err
	}
	c := &copier{up: up, tracker: tracker, disp: disp, log: log, maxAttempts: f.maxAttempts, failed: map[string]error{}}
	return c.run(ctx, roots)
}

// copyRoots resolves what the user typed (./result, a relative path) into
// store paths and refuses the whole list, naming every bad entry, when any
// is not an existing path in the store directory.
func copyRoots(storeDir string, args []string) ([]string, error) {
	var roots []string
	var bad []string
	for _, a := range args {
		p := resolvePath(a, storeDir)
		if _, err := nix.ParseStorePath(storeDir, p); err != nil {
			bad = append(bad, fmt.Sprintf("  %s: %v", a, err))
			continue
		}
		if _, err := os.Lstat(p); err != nil {
			bad = append(bad, fmt.Sprintf("  %s: does not exist (not built, or garbage-collected)", a))
			continue
		}
		roots = append(roots, p)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%d of %d path(s) refused; nothing copied:\n%s", len(bad), len(args), strings.Join(bad, "\n"))
	}
	return slices.Compact(slices.Sorted(slices.Values(roots))), nil
}

// copyUploader checks the URL and the key and opens the cache. Bad flags,
// URL or key exit with status 2.
func copyUploader(ctx context.Context, f copyFlags, obs uploader.Observer, log *zap.Logger) (*uploader.Uploader, error) {
	if f.to == "" {
		return nil, &exitError{2, errors.New("--to is required, e.g. --to 's3://my-cache?region=eu-west-1' or --to file:///var/cache/nix")}
	}
	spec, err := storeurl.Parse(f.to)
	if err != nil {
		return nil, &exitError{2, err}
	}
	if f.compression != "" {
		spec.Format.Compression = f.compression
	}
	if f.compressionLevel != 0 {
		spec.Format.CompressionLevel = f.compressionLevel
	}
	keyFile := f.secretKeyFile
	if keyFile == "" {
		keyFile = spec.SecretKeyFile
	}
	if keyFile == "" {
		return nil, &exitError{2, errors.New("--secret-key-file is required: nixs3q signs every narinfo (create a key with 'nix key generate-secret --key-name NAME > FILE')")}
	}
	key, err := nix.LoadSecretKeyFile(keyFile)
	if err != nil {
		return nil, &exitError{2, err}
	}
	// A one-shot copy on a CI runner reads a key its job just wrote,
	// often with the default umask: warn, where the daemon refuses.
	if err := nix.CheckSecretKeyFile(keyFile, os.Geteuid()); errors.Is(err, nix.ErrKeyFileExposed) {
		log.Warn("the secret key file is readable by others; keep it private (chmod 600), or pass it as --secret-key-file <(...)", zap.Error(err))
	}
	ucfg := uploader.Config{
		StoreDir:     f.storeDir,
		Format:       spec.Format,
		Concurrency:  f.jobs,
		SkipSignedBy: f.skipSignedBy,
		Observer:     obs,
	}
	if f.jobs < 1 {
		return nil, &exitError{2, errors.New("--jobs must be at least 1")}
	}
	if err := ucfg.Validate(); err != nil {
		return nil, &exitError{2, err}
	}
	for _, p := range spec.Ignored {
		log.Warn("store URL parameter has no effect in nixs3q", zap.String("parameter", p))
	}
	cache, err := storeurl.Open(ctx, spec, log.Named("cache"))
	if err != nil {
		return nil, err
	}
	src := &uploader.NixCLI{Nix: f.nixBin, StoreDir: f.storeDir}
	// No presence cache: a one-shot copy has nothing to remember across
	// runs, and every closure member is looked up.
	return uploader.New(ucfg, cache, src, nil, key, log.Named("uploader"))
}

// copier runs the attempts of one copy and keeps its display up to date.
type copier struct {
	up          *uploader.Uploader
	tracker     *progress.Tracker
	disp        *progress.Display // nil: no progress output
	log         *zap.Logger
	maxAttempts int
	roots       []string

	mu     sync.Mutex
	failed map[string]error // roots whose last attempt failed
}

// copyBackoff is the delay before the next attempt after n failed ones.
func copyBackoff(n int) time.Duration {
	return min(2*time.Second<<(n-1), time.Minute)
}

func (c *copier) run(ctx context.Context, roots []string) error {
	c.roots = roots
	stop := c.showProgress()
	defer stop()

	todo := roots
	for attempt := 1; len(todo) > 0; attempt++ {
		var retryAfter time.Duration
		var reason string
		var again []string
		if err := c.up.EnsureCacheInfo(ctx); err != nil {
			for _, r := range todo {
				c.setFailed(r, err)
			}
		} else {
			c.up.UploadBatch(ctx, todo, func(root string, _ uploader.Result, err error) { c.setFailed(root, err) })
		}
		for _, r := range todo {
			err := c.failedErr(r)
			if err == nil || ctx.Err() != nil {
				continue
			}
			cl := uploader.Classify(err)
			if cl.Permanent || errors.Is(err, uploader.ErrPathGone) || attempt >= c.maxAttempts {
				continue
			}
			again = append(again, r)
			retryAfter = max(retryAfter, cl.RetryAfter)
			reason = cl.Reason
		}
		if ctx.Err() != nil || len(again) == 0 {
			break
		}
		wait := max(retryAfter, copyBackoff(attempt))
		c.say(fmt.Sprintf("nixs3q copy: %d path(s) failed (%s); attempt %d of %d in %s", len(again), reason, attempt+1, c.maxAttempts, progress.Duration(wait)))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		todo = again
	}
	stop()

	var failed []string
	for _, r := range roots {
		if c.failedErr(r) != nil {
			failed = append(failed, r)
		}
	}
	if c.disp != nil {
		c.disp.Finish(c.snapshot(roots))
	}
	if ctx.Err() != nil {
		return &exitError{1, fmt.Errorf("interrupted; %d of %d closure(s) not published", len(failed), len(roots))}
	}
	if len(failed) == 0 {
		return nil
	}
	for _, r := range failed {
		err := c.failedErr(r)
		msg := err.Error()
		if cl := uploader.Classify(err); cl.Reason != "" {
			msg = cl.Reason + ": " + msg
		}
		fmt.Fprintf(os.Stderr, "failed: %s: %s\n", r, msg)
	}
	return &exitError{1, fmt.Errorf("%d of %d closure(s) not published", len(failed), len(roots))}
}

func (c *copier) setFailed(root string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		delete(c.failed, root)
	} else {
		c.failed[root] = err
	}
}

func (c *copier) failedErr(root string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed[root]
}

func (c *copier) say(msg string) {
	if c.disp != nil {
		c.disp.Println(msg)
	} else {
		fmt.Fprintln(os.Stderr, msg)
	}
}

// snapshot adds up the tracker's view of roots; a root whose closure is
// not known (its metadata could not be read) counts as one path, failed
// when it failed.
func (c *copier) snapshot(roots []string) progress.Snapshot {
	var active []progress.Transfer
	for _, t := range c.up.Active() {
		active = append(active, progress.Transfer{Path: t.Path, Size: int64(t.NarSize), Done: t.Read})
	}
	s := c.tracker.Snapshot(roots, active)
	unknown := 0
	for _, r := range roots {
		if !c.tracker.Has(r) {
			s.PathsTotal++
			unknown++
			if c.failedErr(r) != nil {
				s.Failed++
			}
		}
	}
	if unknown > 0 && s.Failed == 0 {
		s.Note = "reading store metadata"
	}
	return s
}

// showProgress updates the display until the returned function is called
// (which may be called more than once).
func (c *copier) showProgress() (stop func()) {
	if c.disp == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.disp.Update(c.snapshot(c.roots))
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done); <-finished })
	}
}
