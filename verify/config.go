package verify

import (
	"errors"
	"fmt"
	"time"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan"
)

// Defaults of Config.
const (
	DefaultConcurrency    = scan.DefaultConcurrency
	DefaultNarConcurrency = 8
	DefaultGrace          = 24 * time.Hour
)

// Config tunes Check and Repair. Zero fields take the documented defaults.
type Config struct {
	// StoreDir is the store directory the cache must serve; default
	// nix.DefaultStoreDir.
	StoreDir string

	// TrustedKeys are the keys every narinfo must carry a valid signature
	// of (one of them suffices). Empty: signatures are not checked.
	TrustedKeys []nix.PublicKey

	// Concurrency is the number of narinfo reads, and of confirming
	// lookups, in flight at once; default 64.
	Concurrency int

	// CheckNarHashes downloads and decompresses every NAR and checks it
	// against the narinfo's FileHash, NarHash and NarSize. Off by default:
	// it reads the whole cache.
	CheckNarHashes bool

	// NarConcurrency is the number of NARs downloaded at once with
	// CheckNarHashes; default 8 (small NARs are latency-bound).
	NarConcurrency int

	// Grace is the age under which an unreferenced NAR or an unfinished
	// upload is taken for an upload in progress: not reported, never
	// deleted. Default 24h. Negative is invalid; to consider everything,
	// give a tiny positive value.
	Grace time.Duration

	// Progress, when set, is called periodically while Check and Repair
	// run and at the end of each phase, never concurrently.
	Progress func(Progress)

	// ProgressInterval is the period of Progress calls; default 1s.
	ProgressInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.StoreDir == "" {
		c.StoreDir = nix.DefaultStoreDir
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.NarConcurrency == 0 {
		c.NarConcurrency = DefaultNarConcurrency
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = time.Second
	}
	return c
}

// Validate reports the first invalid field, treating zero fields as their
// defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := (scan.Config{StoreDir: c.StoreDir, Concurrency: c.Concurrency, TrustedKeys: c.TrustedKeys}).Validate(); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if c.NarConcurrency < 0 {
		return errors.New("verify: NAR concurrency must be positive")
	}
	if c.Grace < 0 {
		return errors.New("verify: grace period must not be negative")
	}
	if c.ProgressInterval < 0 {
		return errors.New("verify: progress interval must be positive")
	}
	return nil
}

// Phase names what Check or Repair is doing.
type Phase string

// The phases, in the order they run.
const (
	PhaseScan    Phase = "scan"    // listing and reading narinfos
	PhaseConfirm Phase = "confirm" // direct lookups of the problems seen
	PhaseHash    Phase = "hash"    // downloading and hashing NARs
	PhaseRepair  Phase = "repair"  // uploading, deleting
)

// Progress is how far Check or Repair has come.
type Progress struct {
	Phase Phase
	Scan  scan.Progress // PhaseScan
	Done  int           // items of the phase finished
	Total int           // items of the phase; 0 when unknown
	Bytes int64         // bytes read (PhaseHash)
	Last  bool          // the last call of the phase
}
