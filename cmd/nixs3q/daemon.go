package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/daemon"
	"github.com/nixs3q/nixs3q/gc"
	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/metrics"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/progress"
	"github.com/nixs3q/nixs3q/queue"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/s3"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

type daemonFlags struct {
	store, secretKeyFile, stateDir, socket, compression, allowGroup string
	storeDir, nixBin, logLevel, logFormat, metricsListen            string
	exclude, maxNarSize, uploadLogs, logDir                         string
	workers, compressionLevel, maxAttempts, listRatio               int
	skipSignedBy                                                    listFlag
	presenceTTL, shutdownGrace                                      time.Duration
	allowExposedKey                                                 bool
}

func runDaemon(ctx context.Context, args []string) error {
	fs := newFlags("daemon", "--store URL --secret-key-file FILE [flags]")
	var f daemonFlags
	fs.StringVar(&f.store, "store", "", "binary cache URL: s3://BUCKET?region=...&endpoint=... or file:///DIR (required)")
	fs.StringVar(&f.secretKeyFile, "secret-key-file", "", "Nix signing key file (NAME:BASE64), as made by 'nix key generate-secret'; may also be given as the store URL's secret-key parameter")
	fs.StringVar(&f.stateDir, "state-dir", envOr(hook.StateDirEnv, hook.DefaultStateDir), "directory for the queue database and the spool (env NIXS3Q_STATE_DIR)")
	fs.StringVar(&f.socket, "socket", defaultSocket(), "Unix socket to listen on (env NIXS3Q_SOCKET)")
	fs.IntVar(&f.workers, "workers", uploader.DefaultConcurrency, "queued paths processed at once; also the number of NARs uploaded at once")
	fs.StringVar(&f.compression, "compression", "", "NAR compression: zstd, xz or none (default: the store URL's compression parameter, else zstd)")
	fs.IntVar(&f.compressionLevel, "compression-level", 0, "compression level (0: the compressor's default; zstd 1-22, xz 1-9)")
	fs.BoolVar(&f.allowExposedKey, "allow-exposed-key", false, "start even when the secret key file is readable by group or others or owned by another user (a warning is logged instead)")
	fs.StringVar(&f.allowGroup, "allow-group", "", "group whose members may queue and retry paths, besides root and the daemon's user")
	fs.IntVar(&f.maxAttempts, "max-attempts", queue.DefaultMaxAttempts, "attempts before a path moves to the failed list")
	fs.DurationVar(&f.presenceTTL, "presence-ttl", uploader.DefaultPresenceTTL, "how long a path seen in the cache is trusted to still be there (0 disables the presence cache)")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", 10*time.Second, "how long in-flight uploads may finish after SIGTERM")
	fs.StringVar(&f.storeDir, "store-dir", nix.DefaultStoreDir, "the Nix store directory")
	fs.StringVar(&f.nixBin, "nix", "nix", "the nix command used to read store metadata")
	fs.Var(&f.skipSignedBy, "skip-signed-by", "do not upload closure members validly signed by this upstream cache's public key, NAME:BASE64 as in trusted-public-keys, e.g. cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= (repeatable or comma-separated); clients fetch them from that cache")
	fs.StringVar(&f.exclude, "exclude", "", "do not upload store paths whose name (after the hash) matches this regular expression (RE2, unanchored); paths referring to them are held back too")
	fs.StringVar(&f.maxNarSize, "max-nar-size", "0", "do not upload store paths whose NAR is larger, e.g. 2G (0: no limit); paths referring to them are held back too")
	fs.StringVar(&f.uploadLogs, "upload-logs", uploader.LogsNone, "build logs to upload to log/<drv>: none or all (every build the post-build-hook reports)")
	fs.StringVar(&f.logDir, "nix-log-dir", uploader.DefaultLogDir, "Nix's log directory (NIX_LOG_DIR), where build logs are read from")
	fs.IntVar(&f.listRatio, "list-ratio", uploader.DefaultListRatio, "look up a large closure by listing the bucket's narinfos when the bucket holds at most this many keys per path to look up (S3 only; -1: always one request per path)")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9310 (off by default)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "auto", "console, json, or auto (console on a terminal, json otherwise)")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return &exitError{2, err}
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do if stderr is gone
	return serveDaemon(ctx, f, log)
}

// listFlag collects a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// serveDaemon checks the flags, the store URL and the key before it touches
// anything, then opens the queue and checks the cache, and runs the daemon
// until ctx is cancelled. Configuration errors, including a cache that is
// permanently unusable, exit with status 2.
func serveDaemon(ctx context.Context, f daemonFlags, log *zap.Logger) error {
	if f.store == "" {
		return &exitError{2, errors.New("--store is required, e.g. --store 's3://my-cache?region=eu-west-1' or --store file:///var/cache/nix")}
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
	keyFile := f.secretKeyFile
	if keyFile == "" {
		keyFile = spec.SecretKeyFile
	}
	if keyFile == "" {
		return &exitError{2, errors.New("--secret-key-file is required: nixs3q signs every narinfo (create a key with 'nix key generate-secret --key-name NAME > FILE')")}
	}
	key, err := nix.LoadSecretKeyFile(keyFile)
	if err != nil {
		return &exitError{2, err}
	}
	if err := nix.CheckSecretKeyFile(keyFile, os.Geteuid()); err != nil {
		if !errors.Is(err, nix.ErrKeyFileExposed) || !f.allowExposedKey {
			if errors.Is(err, nix.ErrKeyFileExposed) {
				err = fmt.Errorf("%w (or start with --allow-exposed-key)", err)
			}
			return &exitError{2, err}
		}
		log.Warn("secret key file is exposed; starting anyway (--allow-exposed-key)", zap.Error(err))
	}
	tracker := progress.NewTracker()
	maxNarSize, err := uploader.ParseSize(f.maxNarSize)
	if err != nil {
		return &exitError{2, fmt.Errorf("--max-nar-size %q: %w", f.maxNarSize, err)}
	}
	ucfg := uploader.Config{
		StoreDir:     f.storeDir,
		Format:       spec.Format,
		Concurrency:  f.workers,
		PresenceTTL:  f.presenceTTL,
		SkipSignedBy: f.skipSignedBy,
		// Follows the uploads for the progress that wait reports.
		Observer:   tracker,
		Filters:    uploader.Filters{Exclude: f.exclude, MaxNarSize: maxNarSize},
		UploadLogs: f.uploadLogs,
		LogDir:     f.logDir,
		ListRatio:  f.listRatio,
	}
	if err := ucfg.Validate(); err != nil {
		return &exitError{2, err}
	}
	for _, note := range spec.Deprecated {
		log.Warn("deprecated store URL spelling (it still works)", zap.String("note", note))
	}
	for _, p := range spec.Ignored {
		log.Warn("store URL parameter has no effect in nixs3q", zap.String("parameter", p))
	}
	if !filepath.IsAbs(f.stateDir) {
		return &exitError{2, fmt.Errorf("--state-dir %q must be absolute", f.stateDir)}
	}
	if err := os.MkdirAll(f.stateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}

	q, err := queue.Open(queue.Config{Path: filepath.Join(f.stateDir, "queue.db"), MaxAttempts: f.maxAttempts}, log.Named("queue"))
	if err != nil {
		return err
	}
	defer q.Close()

	m := metrics.New(q.Stats)
	spec.S3.Observer = m
	cache, err := storeurl.Open(ctx, spec, log.Named("cache"))
	if err != nil {
		return err
	}
	if s, ok := cache.(*s3.Store); ok {
		m.WatchRequestLimits(func() (int, int) {
			l := s.Limits()
			return l.Read.Limit, l.Write.Limit
		})
	}
	src := &uploader.NixCLI{Nix: f.nixBin, StoreDir: f.storeDir}
	up, err := uploader.New(ucfg, cache, src, q, key, log.Named("uploader"))
	if err != nil {
		return err
	}
	var presence uploader.Presence
	if f.presenceTTL > 0 {
		presence = q
	}
	up.SetRoots(gc.NewReasserter(cache, presence, nil))
	gw := &gcWatch{cache: cache, log: log.Named("gc")}
	if err := m.Register(gw); err != nil {
		return err
	}
	go gw.run(ctx)
	if f.metricsListen != "" {
		stopMetrics, err := serveMetrics(f.metricsListen, m, log.Named("metrics"))
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	listener, err := activatedListener()
	if err != nil {
		return err
	}
	if listener != nil {
		log.Info("using the socket passed by systemd", zap.String("addr", listener.Addr().String()))
	}
	d, err := daemon.New(daemon.Config{
		Listener:      listener,
		Socket:        f.socket,
		StateDir:      f.stateDir,
		StoreDir:      f.storeDir,
		Workers:       f.workers,
		AllowGroup:    f.allowGroup,
		ShutdownGrace: f.shutdownGrace,
		StoreName:     cache.String(),
		PublicKey:     key.Public().String(),
		LastGC:        gw.get,
		Metrics:       m,
		Progress:      tracker,
	}, q, up, log.Named("daemon"))
	if err != nil {
		return &exitError{2, err}
	}
	nctx, stopNotify := context.WithCancel(ctx)
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		notifier{log: log}.run(nctx, d.Ready(), q, d.CacheNote)
	}()
	err = d.Run(ctx)
	stopNotify()
	<-notified
	if errors.Is(err, daemon.ErrCacheUnusable) {
		return &exitError{2, err}
	}
	return err
}
