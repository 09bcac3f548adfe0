package daemon

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/queue"
	"github.com/nixs3q/nixs3q/uploader"
)

// Uploader is what the daemon needs from the upload pipeline.
type Uploader interface {
	// UploadBatch publishes the closures of roots, calling done once per
	// root as it finishes. Errors wrapping uploader.ErrPathGone mean the
	// root no longer exists.
	UploadBatch(ctx context.Context, roots []string, done func(root string, res uploader.Result, err error))
	// PublishBuild publishes a derivation's realisations and log (a
	// build item, hook.BuildItem).
	PublishBuild(ctx context.Context, drv string) (uploader.BuildResult, error)
	// WantsBuild reports whether PublishBuild has anything to publish for
	// drv; an enqueue queues the build only then.
	WantsBuild(drv string) bool
	// Active lists the NARs being uploaded now.
	Active() []uploader.Transfer
	// Expedite makes the uploads the closures of roots still need urgent,
	// for roots whose upload began before anyone waited for them.
	Expedite(roots []string)
	CacheChecker
}

// Daemon puts the parts together: the protocol server with its handler, the
// spool intake, the worker pool with its recorder, and the cache's health.
// Create it with New and start it with Run.
type Daemon struct {
	cfg    Config
	q      *queue.Queue
	log    *zap.Logger
	access access

	server *hook.Server
	pool   *pool
	health *cacheHealth
	ready  chan struct{}

	// spoolProblem is the last refusal of the spool directory logged, so
	// that a lasting problem is logged once, not every scan. Only the
	// spool loop touches it.
	spoolProblem string
}

// New checks cfg and prepares a daemon around an open queue and an uploader.
// The caller keeps ownership of q and closes it after Run returns.
func New(cfg Config, q *queue.Queue, up Uploader, log *zap.Logger) (*Daemon, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	acc, err := newAccess(cfg.AllowGroup)
	if err != nil {
		return nil, err
	}
	meter := newRateMeter(30 * time.Second)
	health := newCacheHealth(up, q, log.Named("cache"))
	w := newWaiters()
	if cfg.Progress != nil {
		// Plans are kept only for roots someone waits for.
		cfg.Progress.SetFollow(w.watched)
	}
	rec := &recorder{q: q, metrics: cfg.Metrics, meter: meter, health: health, waiters: w, tracker: cfg.Progress, log: log}
	p := newPool(q, up, rec.record, cfg, log)
	h := &handler{wantsBuild: up.WantsBuild, storeDir: cfg.StoreDir, stateDir: cfg.StateDir, storeName: cfg.StoreName, publicKey: cfg.PublicKey, lastGC: cfg.LastGC, q: q, access: acc,
		active: p.activeItems, transfers: up.Active, expedite: up.Expedite, meter: meter, waiters: w, tracker: cfg.Progress, log: log}
	srv := &hook.Server{Handler: h, Log: newEventLog(log).report,
		IdleTimeout: cfg.IdleTimeout, RequestTimeout: cfg.RequestTimeout,
		MaxConns: cfg.MaxConns, MaxConnsPerUID: cfg.MaxConnsPerUID}
	return &Daemon{cfg: cfg, q: q, log: log, access: acc, server: srv, pool: p, health: health,
		ready: make(chan struct{})}, nil
}

// Ready is closed once the daemon listens and has ingested the spool.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// CacheNote says what is known to be wrong with the cache ("" when nothing
// is), for status lines such as systemd's.
func (d *Daemon) CacheNote() string { return d.health.note() }

// Run checks the cache, listens, ingests the spool and processes the queue
// until ctx is cancelled. Then it stops accepting connections at once, lets
// in-flight uploads finish within the shutdown grace, returns the rest to
// the queue, and returns nil. It returns an error only when it cannot
// start: one wrapping ErrCacheUnusable when the cache check finds a
// permanent problem, before anything is listened on or queued.
func (d *Daemon) Run(ctx context.Context) error {
	hctx, stopHealth := context.WithCancel(ctx)
	defer d.health.wait()
	defer stopHealth()
	if err := d.health.start(hctx); err != nil {
		return err
	}
	l := d.cfg.Listener
	if l == nil {
		gid := -1
		if d.cfg.AllowGroup != "" {
			gid = d.access.groupID
		}
		ul, err := listenSocket(d.cfg.Socket, gid)
		if err != nil {
			return err
		}
		l = ul
	}

	// Ingest what the hook spooled while the daemon was away before taking
	// new work, so that start-up order is oldest first.
	d.ingestSpool(ctx)

	var bg sync.WaitGroup
	bg.Go(func() {
		// Intake stops as soon as shutdown begins: Serve closes the
		// listener, so that hooks spool from now on, then finishes the
		// open requests, while in-flight uploads use their grace period.
		d.server.Serve(ctx, unixListener{l})
	})
	close(d.ready)
	d.log.Info("daemon ready", zap.String("socket", l.Addr().String()), zap.Int("workers", d.cfg.Workers), zap.String("store", d.cfg.StoreName))
	bg.Go(func() { d.spoolLoop(ctx) })

	d.pool.run(ctx)
	bg.Wait()
	d.log.Info("daemon stopped")
	return nil
}

// validate returns why path may not be queued, or "" when it may.
func (d *Daemon) validate(path string) string { return validatePath(d.cfg.StoreDir, path) }

// unixListener hands hook.Server the Unix connections of a net.Listener.
type unixListener struct{ net.Listener }

func (l unixListener) Accept() (hook.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("daemon: %T is not a unix connection", c)
	}
	return uc, nil
}
