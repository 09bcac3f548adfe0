package wanproxy

import (
	"context"
	"sync"
	"time"
)

// tokenBucket paces byte transfers to a rate in bytes per second, shared by
// every caller. A take larger than what is available goes into debt and
// sleeps until the debt is paid, so callers are served in arrival order and
// a large take never starves.
type tokenBucket struct {
	rate  float64 // bytes per second
	burst float64 // bytes

	mu     sync.Mutex
	tokens float64
	last   time.Time
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
}

func newTokenBucket(bytesPerSecond float64, burst int) *tokenBucket {
	return &tokenBucket{
		rate: bytesPerSecond, burst: float64(burst), tokens: float64(burst),
		last: time.Now(), now: time.Now, sleep: sleepCtx,
	}
}

// take removes n bytes' worth of tokens and blocks until they were due. It
// returns early with ctx's error when ctx is done (the tokens stay taken).
func (b *tokenBucket) take(ctx context.Context, n int) error {
	b.mu.Lock()
	now := b.now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	var wait time.Duration
	if b.tokens < 0 {
		wait = time.Duration(-b.tokens / b.rate * float64(time.Second))
	}
	b.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	return b.sleep(ctx, wait)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
