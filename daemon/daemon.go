package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/queue"
	"github.com/nixs3q/nixs3q/uploader"
)

// Uploader is what the daemon needs from the upload pipeline.
type Uploader interface {
	// UploadBatch publishes the closures of roots, calling done once per
	// root as it finishes. Errors wrapping uploader.ErrPathGone mean the
	// root no longer exists.
	UploadBatch(ctx context.Context, roots []string, done func(root string, res uploader.Result, err error))
	// Active lists the NARs being uploaded now.
	Active() []uploader.Transfer
}

// Daemon serves the socket and drives the workers. Create it with New and
// start it with Run.
type Daemon struct {
	cfg    Config
	q      *queue.Queue
	up     Uploader
	log    *zap.Logger
	access access

	conns sync.WaitGroup
	rate  *rateMeter

	mu     sync.Mutex
	active map[string]queue.Item // leased items being processed
	// lastSuccess is when an upload last succeeded; failedSince says an
	// item ran out of attempts on a transient error since then (or since
	// start-up, for failures recorded before it).
	lastSuccess time.Time
	failedSince bool
	ready       chan struct{}
	addr        string
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
	return &Daemon{
		cfg:    cfg,
		q:      q,
		up:     up,
		log:    log,
		access: acc,
		rate:   newRateMeter(30 * time.Second),
		active: make(map[string]queue.Item),
		ready:  make(chan struct{}),

		failedSince: true,
	}, nil
}

// Ready is closed once the daemon listens and has ingested the spool.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Run listens, ingests the spool and processes the queue until ctx is
// cancelled. Then it stops accepting connections at once, lets in-flight
// uploads finish within the shutdown grace, returns the rest to the queue,
// and returns nil. It returns an error only when it cannot start.
func (d *Daemon) Run(ctx context.Context) error {
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
	d.addr = l.Addr().String()

	// Ingest what the hook spooled while the daemon was away before taking
	// new work, so that start-up order is oldest first.
	d.ingestSpool(ctx)

	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	var serveDone sync.WaitGroup
	serveDone.Add(1)
	go func() {
		defer serveDone.Done()
		d.serve(serveCtx, l)
	}()
	close(d.ready)
	d.log.Info("daemon ready", zap.String("socket", d.addr), zap.Int("workers", d.cfg.Workers), zap.String("store", d.cfg.StoreName))

	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		d.spoolLoop(ctx)
	}()
	go func() {
		// Intake stops as soon as shutdown begins: close the listener, so
		// that hooks spool from now on, then finish the open requests,
		// while in-flight uploads use their grace period.
		defer bg.Done()
		<-ctx.Done()
		l.Close()
		stopServe()
		serveDone.Wait()
		d.conns.Wait()
	}()

	d.schedule(ctx)
	bg.Wait()
	d.log.Info("daemon stopped")
	return nil
}

// schedule claims due items and runs them on at most Workers goroutines
// until ctx is cancelled; then it waits for running work (see drain).
func (d *Daemon) schedule(ctx context.Context) {
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	sem := make(chan struct{}, d.cfg.Workers)
	done := make(chan struct{}, d.cfg.Workers)
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	for ctx.Err() == nil {
		free := d.cfg.Workers - len(sem)
		claimed, claimErr := 0, error(nil)
		if free > 0 {
			// One slot takes a whole batch of due items: their metadata is
			// read in one query and their closures looked up together.
			items, err := d.q.Claim(d.cfg.BatchSize)
			if err != nil {
				d.log.Error("claim failed", zap.Error(err))
				claimErr = err
			}
			claimed = len(items)
			if len(items) > 0 {
				sem <- struct{}{}
				for _, it := range items {
					d.setActive(it, true)
				}
				wg.Add(1)
				go func(items []queue.Item) {
					defer wg.Done()
					d.process(workCtx, items)
					<-sem
					select { // a wake-up hint; one pending is enough
					case done <- struct{}{}:
					default:
					}
				}(items)
			}
		}
		wait := time.Minute
		if next, ok := d.q.NextDue(); ok {
			wait = time.Until(next)
			if wait < 0 {
				wait = 0
			}
		}
		if len(sem) == d.cfg.Workers {
			wait = time.Hour // nothing can start until a worker is free
		}
		if wait == 0 && claimed > 0 && claimErr == nil {
			continue
		}
		if wait < 100*time.Millisecond && (claimed == 0 || claimErr != nil) {
			wait = 100 * time.Millisecond // nothing claimable yet: don't spin
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case <-d.q.Notify():
		case <-done:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
	d.drain(&wg, cancelWork)
}

// drain waits for running workers for at most the shutdown grace, then
// cancels them; their items go back to pending.
func (d *Daemon) drain(wg *sync.WaitGroup, cancel context.CancelFunc) {
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	if n := d.activeCount(); n > 0 {
		d.log.Info("shutting down: waiting for in-flight uploads", zap.Int("in_flight", n), zap.Duration("grace", d.cfg.ShutdownGrace))
	}
	select {
	case <-finished:
		return
	case <-time.After(d.cfg.ShutdownGrace):
	}
	d.log.Info("shutdown grace over: leaving unfinished items queued", zap.Int("in_flight", d.activeCount()))
	cancel()
	<-finished
}

// process runs a batch of items and records each one's outcome in the queue
// as soon as it is known.
func (d *Daemon) process(ctx context.Context, items []queue.Item) {
	byPath := make(map[string]queue.Item, len(items))
	roots := make([]string, len(items))
	for i, it := range items {
		byPath[it.Path] = it
		roots[i] = it.Path
	}
	start := time.Now()
	d.up.UploadBatch(ctx, roots, func(root string, res uploader.Result, err error) {
		it, ok := byPath[root]
		if !ok {
			return
		}
		d.record(ctx, it, res, err, time.Since(start))
		d.setActive(it, false)
	})
}

// record stores the outcome of one item.
func (d *Daemon) record(ctx context.Context, it queue.Item, res uploader.Result, err error, took time.Duration) {
	log := d.log.With(zap.String("path", it.Path), zap.Int("attempt", it.Attempts+1))
	d.rate.add(res.Bytes)
	switch {
	case err == nil:
		log.Info("uploaded", zap.Int("uploaded", res.Uploaded), zap.Int("skipped", res.Skipped),
			zap.Int64("bytes", res.Bytes), zap.Duration("took", took))
		err = d.q.Complete(it.Path, queue.Outcome{Uploaded: res.Uploaded, Skipped: res.Skipped, Bytes: res.Bytes})
		d.cfg.Metrics.Uploaded(took, it.EnqueuedAt, res.NarBytes, res.Uploaded+res.Skipped)
		d.reviveAfterOutage()
	case errors.Is(err, uploader.ErrPathGone):
		log.Warn("dropped: path vanished before upload", zap.Error(err))
		err = d.q.Complete(it.Path, queue.Outcome{Dropped: true, Detail: err.Error()})
	case ctx.Err() != nil:
		log.Info("interrupted by shutdown; left queued")
		err = d.q.Release([]string{it.Path})
	default:
		c := uploader.Classify(err)
		msg := err.Error()
		if c.Reason != "" {
			msg = c.Reason + ": " + msg
		}
		var item queue.Item
		item, err = d.q.Fail(it.Path, msg, queue.FailOptions{Permanent: c.Permanent, RetryAfter: c.RetryAfter})
		if err == nil {
			d.cfg.Metrics.Failed(c.Code, item.State == queue.Failed)
			if item.State == queue.Failed && !c.Permanent {
				d.mu.Lock()
				d.failedSince = true
				d.mu.Unlock()
			}
			if item.State == queue.Failed {
				log.Error("upload failed; moved to the failed list", zap.String("error", msg), zap.Int("attempts", item.Attempts))
			} else {
				log.Warn("upload failed; will retry", zap.String("error", msg), zap.Time("next_attempt", item.NextAttempt))
			}
		}
	}
	if err != nil {
		log.Error("recording the outcome failed", zap.Error(err))
	}
}

// reviveAfterOutage runs after a successful upload. Items that used up
// their attempts on transient errors since the previous success most likely
// failed because the cache was unreachable; now that it answers, they go
// back to pending instead of waiting for a manual retry. A path that fails
// transiently while others succeed is not revived.
func (d *Daemon) reviveAfterOutage() {
	d.mu.Lock()
	since, revive := d.lastSuccess, d.failedSince
	d.lastSuccess, d.failedSince = time.Now(), false
	d.mu.Unlock()
	if !revive {
		return
	}
	n, err := d.q.RetryTransient(since)
	switch {
	case err != nil:
		d.log.Warn("cannot requeue items that failed during an outage", zap.Error(err))
	case n > 0:
		d.log.Info("uploads succeed again: requeued items that failed transiently meanwhile", zap.Int("count", n))
	}
}

func (d *Daemon) setActive(it queue.Item, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if on {
		it.LeasedAt = time.Now()
		d.active[it.Path] = it
	} else {
		delete(d.active, it.Path)
	}
}

func (d *Daemon) activeCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.active)
}
