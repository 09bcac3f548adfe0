package setup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

// ProbePrefix is the key prefix under which Doctor writes its probe
// objects, each run in a random subdirectory of its own. Nix never reads
// there, and the printed writer policy lets the daemon's credentials delete
// only there unless gc runs.
const ProbePrefix = "nixs3q-doctor/"

// Defaults of DoctorConfig.
const (
	DefaultOpTimeout     = 20 * time.Second
	DefaultMaxPendingAge = 10 * time.Minute
	// maxClockSkew is how far SigV4 lets a request's time differ from the
	// server's before it refuses it.
	maxClockSkew = 15 * time.Minute
	// warnClockSkew is the skew worth fixing before it grows into a failure.
	warnClockSkew = time.Minute
)

// DoctorConfig says what Doctor checks. Every field is optional.
type DoctorConfig struct {
	// Store is the cache's store URL; empty means the one the running
	// daemon reports.
	Store string
	// SecretKeyFile is the signing key file to check; empty skips the key
	// checks.
	SecretKeyFile string
	// PublicKey is the public key clients trust ("NAME:BASE64"); when set,
	// it must be the key file's public half.
	PublicKey string
	// PublicURL is the URL clients substitute from over HTTP(S) (for a
	// bucket, http(s)://ENDPOINT/BUCKET or a CDN); empty skips the
	// client-side read checks.
	PublicURL string
	// StoreDir is the local Nix store directory; empty means
	// nix.DefaultStoreDir.
	StoreDir string
	// Daemon asks the running daemon for its status; nil skips the daemon
	// check.
	Daemon func(ctx context.Context) (*hook.Status, error)
	// HTTPClient makes the client-side reads of PublicURL, without
	// credentials; nil means a client with OpTimeout.
	HTTPClient *http.Client
	// OpTimeout bounds each operation; 0 means DefaultOpTimeout.
	OpTimeout time.Duration
	// MaxPendingAge is the age of the oldest queued path above which the
	// daemon check warns; 0 means DefaultMaxPendingAge.
	MaxPendingAge time.Duration
}

// Validate reports the first problem with c.
func (c DoctorConfig) Validate() error {
	switch {
	case c.StoreDir != "" && !filepath.IsAbs(c.StoreDir):
		return fmt.Errorf("setup: store directory %q is not absolute", c.StoreDir)
	case c.OpTimeout < 0 || c.MaxPendingAge < 0:
		return errors.New("setup: negative duration")
	}
	return nil
}

// doctor is one run of Doctor.
type doctor struct {
	cfg    DoctorConfig
	log    *zap.Logger
	r      Report
	spec   storeurl.Spec
	cache  uploader.Cache
	signer *nix.PublicKey // the key narinfos should be signed with, when known
	probe  string         // this run's probe prefix, ending in "/"
	sample func(ctx context.Context) (string, error)
	// openS3 opens a bucket; tests replace it with a fake.
	openS3 func(ctx context.Context, spec storeurl.Spec, attempts int, log *zap.Logger) (uploader.Cache, bucketAdmin, error)
}

// Doctor checks every link from this machine's daemon to the cache's
// clients by doing real operations, and reports one Check per link; see the
// package documentation for what it may change. It returns an error only
// for an invalid cfg; every problem found is in the Report.
func Doctor(ctx context.Context, cfg DoctorConfig, log *zap.Logger) (Report, error) {
	return runDoctor(ctx, cfg, log, openS3)
}

func runDoctor(ctx context.Context, cfg DoctorConfig, log *zap.Logger,
	open func(context.Context, storeurl.Spec, int, *zap.Logger) (uploader.Cache, bucketAdmin, error),
) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = nix.DefaultStoreDir
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	if cfg.MaxPendingAge == 0 {
		cfg.MaxPendingAge = DefaultMaxPendingAge
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: cfg.OpTimeout}
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return Report{}, fmt.Errorf("setup: %w", err)
	}
	d := &doctor{cfg: cfg, log: log, probe: ProbePrefix + hex.EncodeToString(rnd[:]) + "/", openS3: open}

	var st *hook.Status
	var daemonErr error
	if cfg.Daemon != nil {
		sctx, cancel := d.op(ctx)
		st, daemonErr = cfg.Daemon(sctx)
		cancel()
	}
	if d.checkURL(st) {
		switch d.spec.Scheme {
		case "s3":
			d.checkS3(ctx)
		case "file":
			d.checkDir(ctx)
		}
	}
	d.checkKey(st)
	d.checkPublic(ctx)
	if cfg.Daemon != nil {
		d.checkDaemon(st, daemonErr)
	}
	return d.r, nil
}

func (d *doctor) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.cfg.OpTimeout)
}

func (d *doctor) checkURL(st *hook.Status) bool {
	raw, from := d.cfg.Store, ""
	if raw == "" && st != nil {
		raw, from = st.Store, " (the daemon's)"
	}
	if raw == "" {
		d.r.fail("store-url", "pass --store URL, or run doctor where the daemon runs so that it can ask it",
			"no store URL given, and no daemon to ask for its own")
		return false
	}
	spec, err := storeurl.Parse(raw)
	if err != nil {
		d.r.fail("store-url", "fix the store URL (see the README's table of parameters)", "%v", err)
		return false
	}
	d.spec = spec
	d.r.ok("store-url", "%s%s", storeurl.Redact(raw), from)
	return true
}

// checkCacheInfo reads nix-cache-info through the writer's credentials.
func (d *doctor) checkCacheInfo(ctx context.Context) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	info, err := readCacheInfo(ctx, d.cache)
	switch {
	case isNotExist(err):
		d.r.fail("nix-cache-info", "run 'nixs3q init' (or start the daemon, which writes it)",
			"the cache has no nix-cache-info: clients cannot use it")
	case errors.Is(err, uploader.ErrAccessDenied) || errors.Is(err, fs.ErrPermission):
		d.r.fail("nix-cache-info", "let the daemon's credentials read the cache (s3:GetObject, or the directory's permissions)", "reading it is denied: %v", err)
	case err != nil:
		d.r.fail("nix-cache-info", "fix the file's content, or delete it and run 'nixs3q init'", "%v", err)
	case info.StoreDir != d.cfg.StoreDir:
		d.r.fail("nix-cache-info", "use another cache for this store, or run doctor with --store-dir "+info.StoreDir,
			"the cache is for store %s, this machine's store is %s", info.StoreDir, d.cfg.StoreDir)
	default:
		d.r.ok("nix-cache-info", "StoreDir %s, WantMassQuery %v, Priority %d", info.StoreDir, info.WantMassQuery, info.Priority)
	}
}

// probeBody is what the put probe writes and the get probe expects.
const probeBody = "nixs3q doctor probe: safe to delete\n"

func (d *doctor) putProbe(ctx context.Context, key string) error {
	ctx, cancel := d.op(ctx)
	defer cancel()
	return d.cache.Put(ctx, key, strings.NewReader(probeBody), uploader.PutOptions{Size: int64(len(probeBody)), SizeHint: int64(len(probeBody)), ContentType: "text/plain"})
}

func (d *doctor) getProbe(ctx context.Context, key string) error {
	ctx, cancel := d.op(ctx)
	defer cancel()
	rc, err := d.cache.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return err
	}
	if string(data) != probeBody {
		return fmt.Errorf("read back %d bytes that differ from the %d written", len(data), len(probeBody))
	}
	return nil
}
