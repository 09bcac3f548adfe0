package queue

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by Open to zero-valued Config fields.
const (
	DefaultLockTimeout    = 5 * time.Second
	DefaultMaxAttempts    = 8
	DefaultBackoffBase    = 5 * time.Second
	DefaultBackoffMax     = 30 * time.Minute
	DefaultHistoryLimit   = 1000
	DefaultPresenceMaxAge = 24 * time.Hour
	DefaultPresenceLimit  = 500_000
	DefaultCompactMinSize = 32 << 20
)

// maxPathLen bounds the length of a queued path. Store paths are far shorter;
// the bound keeps keys well inside bbolt's key size limit.
const maxPathLen = 4096

// Config configures Open. A zero value in any field but Path means the
// documented default.
type Config struct {
	// Path is the bbolt file. Required. Its directory must exist.
	Path string
	// LockTimeout bounds how long Open waits for the file lock held by
	// another process before failing with ErrLocked. Default 5s.
	LockTimeout time.Duration
	// MaxAttempts is the number of failed attempts after which an item moves
	// to the failed list. Default 8.
	MaxAttempts int
	// BackoffBase is the backoff after the first failed attempt; it doubles
	// with each further attempt. Default 5s.
	BackoffBase time.Duration
	// BackoffMax caps the backoff. Default 30m.
	BackoffMax time.Duration
	// HistoryLimit is how many finished entries History keeps. Default 1000.
	HistoryLimit int
	// PresenceMaxAge is the age after which presence marks are pruned.
	// PresentFresh never reports a key older than this, whatever its ttl.
	// Default 24h.
	PresenceMaxAge time.Duration
	// PresenceLimit bounds the number of presence marks kept; the oldest are
	// pruned first. Default 500000.
	PresenceLimit int
	// CompactMinSize is the file size from which Open compacts the file
	// when more than half of it is free pages (bbolt never shrinks a file
	// by itself). Default 32 MiB; negative disables compaction.
	CompactMinSize int64
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Validate reports bad values without applying defaults: zero values are
// valid (they mean the default), negative durations and counts are not.
func (c Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("queue: config: path is required"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"lock timeout", c.LockTimeout},
		{"backoff base", c.BackoffBase},
		{"backoff max", c.BackoffMax},
		{"presence max age", c.PresenceMaxAge},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("queue: config: %s must not be negative, got %s", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"max attempts", c.MaxAttempts},
		{"history limit", c.HistoryLimit},
		{"presence limit", c.PresenceLimit},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("queue: config: %s must not be negative, got %d", n.name, n.v))
		}
	}
	if c.BackoffBase > 0 && c.BackoffMax > 0 && c.BackoffMax < c.BackoffBase {
		errs = append(errs, fmt.Errorf("queue: config: backoff max %s is below backoff base %s", c.BackoffMax, c.BackoffBase))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.LockTimeout == 0 {
		c.LockTimeout = DefaultLockTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(DefaultBackoffMax, c.BackoffBase)
	}
	if c.HistoryLimit == 0 {
		c.HistoryLimit = DefaultHistoryLimit
	}
	if c.PresenceMaxAge == 0 {
		c.PresenceMaxAge = DefaultPresenceMaxAge
	}
	if c.PresenceLimit == 0 {
		c.PresenceLimit = DefaultPresenceLimit
	}
	if c.CompactMinSize == 0 {
		c.CompactMinSize = DefaultCompactMinSize
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
