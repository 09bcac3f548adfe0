package daemon

import (
	"context"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/queue"
	"github.com/nixs3q/nixs3q/uploader"
)

// claimer is what the pool needs from the queue.
type claimer interface {
	Claim(max int) ([]queue.Item, error)
	// ClaimUrgent and IsUrgent concern the paths someone waits for
	// (queue.Prioritize).
	ClaimUrgent(max int) ([]queue.Item, error)
	IsUrgent(path string) bool
	Urgent() int
	NextDue() (time.Time, bool)
	Notify() <-chan struct{}
}

// batchUploader publishes the closures of roots, calling done once per root
// as it finishes, and what a build adds to its outputs.
type batchUploader interface {
	UploadBatch(ctx context.Context, roots []string, done func(root string, res uploader.Result, err error))
	PublishBuild(ctx context.Context, drv string) (uploader.BuildResult, error)
}

// pool claims due items from the queue and runs them on at most workers
// goroutines, a batch per goroutine, handing each item's outcome to the
// recorder as soon as it is known. It knows which items are in flight.
//
// Items someone waits for (queue.Prioritize) have a lane of their own: one
// more goroutine that claims only them, so that they never wait for a
// worker busy with the backlog, and their uploads run under
// uploader.Urgent, so that their NARs take the next free streaming slot.
// Marked items that a regular claim takes run as an urgent batch of their
// own within that worker.
type pool struct {
	q         claimer
	up        batchUploader
	record    func(workCtx context.Context, o outcome)
	workers   int
	batchSize int
	grace     time.Duration
	log       *zap.Logger

	mu     sync.Mutex
	active map[string]queue.Item // leased items being processed
}

func newPool(q claimer, up batchUploader, record func(context.Context, outcome), cfg Config, log *zap.Logger) *pool {
	return &pool{q: q, up: up, record: record, workers: cfg.Workers, batchSize: cfg.BatchSize,
		grace: cfg.ShutdownGrace, log: log, active: make(map[string]queue.Item)}
}

// run claims and processes items until ctx is cancelled. Then it waits for
// running work for at most the grace period, cancels what is left (the
// recorder returns those items to pending) and returns once every worker
// has stopped.
func (p *pool) run(ctx context.Context) {
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	sem := make(chan struct{}, p.workers)
	urgentSem := make(chan struct{}, 1) // the urgent lane
	done := make(chan struct{}, p.workers+1)
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := func(slot chan struct{}, items []queue.Item) {
		slot <- struct{}{}
		for _, it := range items {
			p.setActive(it, true)
		}
		wg.Go(func() {
			p.processSplit(workCtx, items)
			<-slot
			select { // a wake-up hint; one pending is enough
			case done <- struct{}{}:
			default:
			}
		})
	}

	for ctx.Err() == nil {
		claimed, claimErr := 0, error(nil)
		if len(urgentSem) == 0 {
			items, err := p.q.ClaimUrgent(p.batchSize)
			if err != nil {
				p.log.Error("claim failed", zap.Error(err))
				claimErr = err
			}
			if len(items) > 0 {
				claimed += len(items)
				start(urgentSem, items)
			}
		}
		if len(sem) < p.workers {
			// One slot takes a whole batch of due items: their metadata is
			// read in one query and their closures looked up together.
			items, err := p.q.Claim(p.batchSize)
			if err != nil {
				p.log.Error("claim failed", zap.Error(err))
				claimErr = err
			}
			if len(items) > 0 {
				claimed += len(items)
				start(sem, items)
			}
		}
		wait := time.Minute
		if next, ok := p.q.NextDue(); ok {
			wait = max(time.Until(next), 0)
		}
		if len(sem) == p.workers {
			wait = time.Hour // nothing can start until a worker is free
			if len(urgentSem) == 0 && p.q.Urgent() > 0 {
				// ...but the urgent lane: a waited-for item retried later
				// becomes due without a notification.
				wait = time.Second
			}
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
		case <-p.q.Notify():
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
	p.drain(&wg, cancelWork)
}

// drain waits for running workers for at most the grace period, then
// cancels them.
func (p *pool) drain(wg *sync.WaitGroup, cancel context.CancelFunc) {
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	if n := p.inFlight(); n > 0 {
		p.log.Info("shutting down: waiting for in-flight uploads", zap.Int("in_flight", n), zap.Duration("grace", p.grace))
	}
	select {
	case <-finished:
		return
	case <-time.After(p.grace):
	}
	p.log.Info("shutdown grace over: leaving unfinished items queued", zap.Int("in_flight", p.inFlight()))
	cancel()
	<-finished
}

// processSplit runs the items someone waits for as an urgent batch and the
// others as a plain one, side by side, and returns when both are done.
func (p *pool) processSplit(ctx context.Context, items []queue.Item) {
	var urgent, plain []queue.Item
	for _, it := range items {
		if p.q.IsUrgent(it.Path) {
			urgent = append(urgent, it)
		} else {
			plain = append(plain, it)
		}
	}
	var wg sync.WaitGroup
	if len(urgent) > 0 {
		wg.Go(func() { p.process(uploader.Urgent(ctx), urgent) })
	}
	if len(plain) > 0 {
		p.process(ctx, plain)
	}
	wg.Wait()
}

// process uploads a batch of items and hands each outcome on. Store paths
// go up together; builds (hook.BuildItem) follow one by one, after the
// batch, which usually holds their outputs.
func (p *pool) process(ctx context.Context, items []queue.Item) {
	byPath := make(map[string]queue.Item, len(items))
	var roots []string
	var builds []queue.Item
	for _, it := range items {
		if _, ok := hook.BuildDrv(it.Path); ok {
			builds = append(builds, it)
			continue
		}
		byPath[it.Path] = it
		roots = append(roots, it.Path)
	}
	start := time.Now()
	if len(roots) > 0 {
		p.up.UploadBatch(ctx, roots, func(root string, res uploader.Result, err error) {
			it, ok := byPath[root]
			if !ok {
				return
			}
			p.record(ctx, outcome{item: it, res: res, err: err, took: time.Since(start)})
			p.setActive(it, false)
		})
	}
	for _, it := range builds {
		drv, _ := hook.BuildDrv(it.Path)
		start := time.Now()
		br, err := p.up.PublishBuild(ctx, drv)
		p.record(ctx, outcome{item: it, res: br.Result, build: &br, err: err, took: time.Since(start)})
		p.setActive(it, false)
	}
}

func (p *pool) setActive(it queue.Item, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		it.LeasedAt = time.Now()
		p.active[it.Path] = it
	} else {
		delete(p.active, it.Path)
	}
}

func (p *pool) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.active)
}

// activeItems lists the items being processed, longest-running first.
func (p *pool) activeItems() []queue.Item {
	p.mu.Lock()
	out := make([]queue.Item, 0, len(p.active))
	for _, it := range p.active {
		out = append(out, it)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].LeasedAt.Before(out[j].LeasedAt) })
	return out
}
