package gc

import (
	"errors"
	"path"
	"time"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
)

// Defaults of Config.
const (
	// DefaultSettle exceeds uploader.RecheckAfter + uploader.PublishTimeout
	// by a margin for clocks that run at slightly different speeds and for
	// the listing's own time.
	DefaultSettle      = uploader.RecheckAfter + uploader.PublishTimeout + 30*time.Second
	DefaultConcurrency = 16
)

// Config tunes a run. Cutoff is required; zero fields take the documented
// defaults, but for Grace and Settle, whose zero is a valid choice: start
// from DefaultConfig.
type Config struct {
	// StoreDir is the store directory of the cache; default
	// nix.DefaultStoreDir.
	StoreDir string

	// Cutoff: narinfos modified, and roots re-asserted, at or after it are
	// kept with their closures. It must not be after Now.
	Cutoff time.Time

	// Grace is the time between the first scan (mark) and the second
	// (sweep); 0 (the default) scans once. See the package documentation.
	Grace time.Duration

	// Settle is how long the run waits after deleting narinfos, and again
	// after deleting NARs, before it looks for narinfos published
	// meanwhile (DefaultConfig: DefaultSettle). 0 is for a bucket nobody
	// writes to during the run.
	Settle time.Duration

	// DryRun computes the report and deletes, writes and locks nothing.
	DryRun bool

	// Concurrency is the number of deletions (and narinfo reads) in
	// flight; default 16. ScanConcurrency is the scan's (0: its default).
	Concurrency     int
	ScanConcurrency int

	// LockTTL and LockSettle: see Lock; defaults DefaultLockTTL and
	// DefaultLockSettle.
	LockTTL    time.Duration
	LockSettle time.Duration

	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time

	// Progress, when set, is called from the run's goroutine at each phase
	// and after each batch of deletions. It must return quickly.
	Progress func(Progress)

	// BeforeDelete, when set, is called before each deletion with the key;
	// an error stops the run there. Tests use it as a kill point.
	BeforeDelete func(key string) error
}

// Progress reports where a run is.
type Progress struct {
	Phase string // "scan", "rescan", "narinfos", "settle", "nars", "other", "done"
	Done  int64  // deletions in this phase so far
	Total int64  // deletions planned in this phase
}

// DefaultConfig returns a Config with every default, Settle included, and
// the given cutoff.
func DefaultConfig(cutoff time.Time) Config {
	return Config{Cutoff: cutoff, Settle: DefaultSettle}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.StoreDir == "" {
		c.StoreDir = nix.DefaultStoreDir
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.LockTTL == 0 {
		c.LockTTL = DefaultLockTTL
	}
	if c.LockSettle == 0 {
		c.LockSettle = DefaultLockSettle
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.StoreDir == "/" || !path.IsAbs(c.StoreDir) || path.Clean(c.StoreDir) != c.StoreDir:
		return errors.New("gc: store directory must be a clean absolute path")
	case c.Cutoff.IsZero():
		return errors.New("gc: a cutoff is required (--keep-days or --keep-since)")
	case c.Cutoff.After(c.Now()):
		return errors.New("gc: the cutoff is in the future: it would keep nothing that is written during the run")
	case c.Grace < 0 || c.Settle < 0:
		return errors.New("gc: grace and settle must not be negative")
	case c.Concurrency < 0 || c.ScanConcurrency < 0:
		return errors.New("gc: concurrency must be positive")
	case c.LockTTL < 0 || c.LockSettle < 0:
		return errors.New("gc: lock TTL and settle must not be negative")
	}
	return nil
}
