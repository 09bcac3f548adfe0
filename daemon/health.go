package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/uploader"
)

// ErrCacheUnusable wraps a permanent problem with the cache found at
// start-up (no such bucket, access denied, a cache for another store
// directory): Run returns it and the daemon should not start.
var ErrCacheUnusable = errors.New("daemon: the cache cannot be used")

// CacheChecker makes sure the cache is set up for this store (its
// nix-cache-info exists and matches), creating what is missing.
type CacheChecker interface {
	EnsureCacheInfo(ctx context.Context) error
}

// reviver moves items that failed transiently since a time back to pending.
type reviver interface {
	RetryTransient(since time.Time) (int, error)
}

// cacheHealth follows whether the cache answers. At start-up it checks the
// cache (start); while the cache is unreachable it checks again in the
// background, and it says so in note. When uploads succeed again after
// items used up their attempts on transient errors, it revives those items.
// Its methods are safe for concurrent use.
type cacheHealth struct {
	cache CacheChecker
	q     reviver
	log   *zap.Logger

	// checkTimeout bounds one check; slowAfter is how long start-up waits
	// for it; recheckMin and recheckMax bound the background retry delay.
	checkTimeout, slowAfter, recheckMin, recheckMax time.Duration

	bg sync.WaitGroup

	mu   sync.Mutex
	text string // what status lines say about the cache; "" when fine
	// lastSuccess is when an upload last succeeded; failedSince says an
	// item ran out of attempts on a transient error since then (or since
	// start-up, for failures recorded before it).
	lastSuccess time.Time
	failedSince bool
}

func newCacheHealth(cache CacheChecker, q reviver, log *zap.Logger) *cacheHealth {
	return &cacheHealth{cache: cache, q: q, log: log, failedSince: true,
		checkTimeout: 20 * time.Second, slowAfter: 3 * time.Second,
		recheckMin: 5 * time.Second, recheckMax: 5 * time.Minute}
}

// start checks the cache. A permanent problem that shows within slowAfter
// is returned, wrapping ErrCacheUnusable. A cache that does not answer in
// that time, or answers with a transient error, does not hold up start-up:
// queueing must not depend on the network, so the check goes on in the
// background until it passes or ctx is cancelled (see wait).
func (h *cacheHealth) start(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, h.checkTimeout)
	result := make(chan error, 1)
	go func() {
		defer cancel()
		result <- h.cache.EnsureCacheInfo(cctx)
	}()
	select {
	case err := <-result:
		if err == nil {
			return nil
		}
		c := uploader.Classify(err)
		if c.Permanent {
			return fmt.Errorf("%w: %s: %w", ErrCacheUnusable, c.Reason, err)
		}
		h.log.Warn("cache not reachable yet; queueing anyway and retrying uploads later", zap.Error(err))
	case <-time.After(h.slowAfter):
		h.log.Warn("cache is slow to answer; starting anyway and checking it in the background")
	}
	h.setNote("cache unreachable, retrying")
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		h.recheck(ctx)
	}()
	return nil
}

// recheck checks the cache again, with growing delays, until the check
// passes or ctx is cancelled, so that status and systemd show when the
// cache becomes reachable.
func (h *cacheHealth) recheck(ctx context.Context) {
	for delay := h.recheckMin; ; delay = min(2*delay, h.recheckMax) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		cctx, cancel := context.WithTimeout(ctx, h.checkTimeout)
		err := h.cache.EnsureCacheInfo(cctx)
		cancel()
		if err == nil {
			h.log.Info("cache reachable")
			h.setNote("")
			return
		}
		if ctx.Err() != nil {
			return
		}
		c := uploader.Classify(err)
		h.setNote("cache check failing: " + c.Reason)
		h.log.Warn("cache check failed", zap.Error(err), zap.Bool("permanent", c.Permanent))
	}
}

// wait returns once the background check has stopped; cancel start's ctx
// first.
func (h *cacheHealth) wait() { h.bg.Wait() }

func (h *cacheHealth) setNote(s string) {
	h.mu.Lock()
	h.text = s
	h.mu.Unlock()
}

// note says what is wrong with the cache, "" when nothing is known to be.
func (h *cacheHealth) note() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.text
}

// failedTransiently records that an item used up its attempts on a
// transient error.
func (h *cacheHealth) failedTransiently() {
	h.mu.Lock()
	h.failedSince = true
	h.mu.Unlock()
}

// succeeded records a successful upload. Items that used up their attempts
// on transient errors since the previous success most likely failed because
// the cache was unreachable; now that it answers, they go back to pending
// instead of waiting for a manual retry. A path that fails transiently
// while others succeed is not revived.
func (h *cacheHealth) succeeded() {
	h.mu.Lock()
	since, revive := h.lastSuccess, h.failedSince
	h.lastSuccess, h.failedSince = time.Now(), false
	h.mu.Unlock()
	if !revive {
		return
	}
	n, err := h.q.RetryTransient(since)
	switch {
	case err != nil:
		h.log.Warn("cannot requeue items that failed during an outage", zap.Error(err))
	case n > 0:
		h.log.Info("uploads succeed again: requeued items that failed transiently meanwhile", zap.Int("count", n))
	}
}
