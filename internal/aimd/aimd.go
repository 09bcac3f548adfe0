// Package aimd is an adaptive concurrency limit: additive increase,
// multiplicative decrease, as TCP does for its congestion window and as
// niks3 does for its S3 requests. Callers acquire a slot per request and
// report how it went; the limit grows while the server keeps answering and
// shrinks when it asks for fewer requests (S3 SlowDown, HTTP 429 or 503).
//
// # Promises
//
//   - At most Limit() slots are held at once, except right after a
//     decrease, when slots already held are not taken back: new ones wait
//     until the count drops below the new limit.
//   - The limit stays within [Config.Min, Config.Max].
//   - Slow start: until the first throttled answer the limit grows by one
//     per success (doubling per round trip); afterwards by 1/limit per
//     success (one per round trip's worth of successes).
//   - One decrease per congestion event: a throttled answer to a request
//     that was sent before the last decrease does not decrease again, nor
//     does one within Config.Cooldown of it, so a burst of throttled
//     answers shrinks the limit once, not once per answer. Servers that
//     throttle a fraction of requests whatever the load (S3 partitions
//     scaling, a shared quota) would otherwise drive the limit to its
//     minimum; with the cooldown it settles where a second's growth
//     balances one decrease.
//   - Waiters are served in arrival order; a waiter whose context ends
//     leaves the queue and gets the context's error.
//
// A Limiter is safe for concurrent use.
package aimd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultMin      = 1
	DefaultBackoff  = 0.75
	DefaultCooldown = time.Second
)

// Config bounds a Limiter.
type Config struct {
	// Initial is the starting limit. Required.
	Initial int
	// Min is the smallest limit; 0 means DefaultMin.
	Min int
	// Max is the largest limit. Required, at least Initial.
	Max int
	// Backoff multiplies the limit on a throttled answer; 0 means
	// DefaultBackoff. It must be in (0, 1).
	Backoff float64
	// Cooldown is the least time between two decreases; 0 means
	// DefaultCooldown (S3's Retry-After is given in whole seconds).
	Cooldown time.Duration
}

func (c Config) withDefaults() Config {
	if c.Min == 0 {
		c.Min = DefaultMin
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.Cooldown == 0 {
		c.Cooldown = DefaultCooldown
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Min < 1:
		return errors.New("aimd: minimum limit must be at least 1")
	case c.Initial < c.Min || c.Initial > c.Max:
		return fmt.Errorf("aimd: initial limit %d not within [%d, %d]", c.Initial, c.Min, c.Max)
	case !(c.Backoff > 0 && c.Backoff < 1):
		return fmt.Errorf("aimd: backoff factor %v not within (0, 1)", c.Backoff)
	case c.Cooldown < 0:
		return errors.New("aimd: negative cooldown")
	}
	return nil
}

// Outcome is how a request went, as far as the limit is concerned.
type Outcome int

const (
	// Success: the server answered (any answer that is not throttling,
	// including 404). The limit grows.
	Success Outcome = iota
	// Throttled: the server asked for fewer requests. The limit shrinks.
	Throttled
	// Ignored: the request failed in a way that says nothing about the
	// server's capacity (cancelled, a failing body). The limit stays.
	Ignored
)

// Limiter is an adaptive concurrency limit.
type Limiter struct {
	cfg Config

	mu        sync.Mutex
	limit     float64
	inFlight  int
	epoch     uint64 // increments on every decrease
	lastDrop  time.Time
	now       func() time.Time
	slowStart bool
	waiters   []chan struct{} // FIFO; closed when granted a slot
	decreases uint64
}

// New returns a Limiter starting at cfg.Initial.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Limiter{cfg: cfg, limit: float64(cfg.Initial), slowStart: true, now: time.Now}, nil
}

// Slot is one acquired request slot; give it back with Release.
type Slot struct {
	epoch uint64
}

// Acquire blocks until a slot is free or ctx is done.
func (l *Limiter) Acquire(ctx context.Context) (Slot, error) {
	l.mu.Lock()
	if len(l.waiters) == 0 && l.inFlight < l.cap() {
		l.inFlight++
		s := Slot{epoch: l.epoch}
		l.mu.Unlock()
		return s, nil
	}
	ch := make(chan struct{})
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	select {
	case <-ch:
		l.mu.Lock()
		s := Slot{epoch: l.epoch}
		l.mu.Unlock()
		return s, nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		select {
		case <-ch: // granted meanwhile: hand it on
			l.inFlight--
			l.grant()
		default:
			for i, w := range l.waiters {
				if w == ch {
					l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
					break
				}
			}
		}
		return Slot{}, ctx.Err()
	}
}

// Release gives back s and adjusts the limit by o.
func (l *Limiter) Release(s Slot, o Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	switch o {
	case Success:
		if l.slowStart {
			l.limit++
		} else {
			l.limit += 1 / l.limit
		}
		l.limit = min(l.limit, float64(l.cfg.Max))
	case Throttled:
		if now := l.now(); s.epoch == l.epoch && (l.lastDrop.IsZero() || now.Sub(l.lastDrop) >= l.cfg.Cooldown) {
			l.lastDrop = now
			l.epoch++
			l.decreases++
			l.slowStart = false
			l.limit = max(float64(l.cfg.Min), l.limit*l.cfg.Backoff)
		}
	}
	l.grant()
}

// cap is the whole number of slots the limit allows; l.mu held.
func (l *Limiter) cap() int { return int(l.limit) }

// grant wakes waiters while slots are free; l.mu held.
func (l *Limiter) grant() {
	for len(l.waiters) > 0 && l.inFlight < l.cap() {
		ch := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.inFlight++
		close(ch)
	}
}

// Limit is the current limit.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cap()
}

// Stats is a snapshot of a Limiter.
type Stats struct {
	Limit     int
	InFlight  int
	Waiting   int
	Decreases uint64 // throttling events that shrank the limit so far
}

// Stats returns the current state.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Limit: l.cap(), InFlight: l.inFlight, Waiting: len(l.waiters), Decreases: l.decreases}
}
