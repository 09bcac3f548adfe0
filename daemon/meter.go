package daemon

import (
	"sync"
	"time"
)

// rateMeter measures bytes per second over a sliding window. It is safe for
// concurrent use.
type rateMeter struct {
	window time.Duration
	mu     sync.Mutex
	events []rateEvent
}

type rateEvent struct {
	at    time.Time
	bytes int64
}

func newRateMeter(window time.Duration) *rateMeter { return &rateMeter{window: window} }

func (r *rateMeter) add(n int64) {
	if n <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, rateEvent{time.Now(), n})
	r.trim(time.Now())
}

func (r *rateMeter) trim(now time.Time) {
	i := 0
	for i < len(r.events) && now.Sub(r.events[i].at) > r.window {
		i++
	}
	r.events = r.events[i:]
}

func (r *rateMeter) perSecond() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.trim(now)
	var sum int64
	for _, e := range r.events {
		sum += e.bytes
	}
	return float64(sum) / r.window.Seconds()
}
