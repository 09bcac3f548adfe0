package scan

import (
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

// Defaults of Config.
const (
	DefaultConcurrency      = 64
	DefaultMaxNarInfoSize   = 1 << 20
	DefaultProgressInterval = time.Second
)

// MetaPrefix is the key prefix under which nixs3q keeps metadata of its
// own in a cache (garbage collector roots and pins, for example). Objects
// under it are classified ClassMeta and never taken for narinfos or NARs.
const MetaPrefix = "nixs3q/"

// Config tunes a scan. Zero fields take the documented defaults.
type Config struct {
	// StoreDir is the store directory the cache serves; narinfos of paths
	// in another directory are Invalid. Default nix.DefaultStoreDir.
	StoreDir string

	// Concurrency is the number of narinfo reads in flight at once;
	// default 64.
	Concurrency int

	// TrustedKeys are the keys a narinfo's signatures are checked against
	// (Node.Sig). Empty: signatures are not checked (SigUnchecked).
	TrustedKeys []nix.PublicKey

	// MaxNarInfoSize bounds the size of a narinfo read; a larger one is
	// Invalid. Default 1 MiB (Nix's own are well under 10 KiB).
	MaxNarInfoSize int64

	// Progress, when set, is called every ProgressInterval while the scan
	// runs and once more when it has finished (Progress.Done), from a
	// goroutine of its own; calls never overlap. It must return quickly.
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
	if c.MaxNarInfoSize == 0 {
		c.MaxNarInfoSize = DefaultMaxNarInfoSize
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	return c
}

// Validate reports the first invalid field, treating zero fields as their
// defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.StoreDir == "/" || !path.IsAbs(c.StoreDir) || path.Clean(c.StoreDir) != c.StoreDir {
		return fmt.Errorf("scan: store directory %q is not a clean absolute path", c.StoreDir)
	}
	if c.Concurrency < 0 {
		return errors.New("scan: concurrency must be positive")
	}
	if c.MaxNarInfoSize < 0 {
		return errors.New("scan: maximum narinfo size must be positive")
	}
	if c.ProgressInterval < 0 {
		return errors.New("scan: progress interval must be positive")
	}
	for _, k := range c.TrustedKeys {
		if k.Name == "" {
			return errors.New("scan: a trusted key has no name (parse keys with nix.ParsePublicKey)")
		}
	}
	return nil
}

// Progress is how far a scan has come.
type Progress struct {
	Listed   int64 // objects listed so far
	NarInfos int64 // narinfos among them
	Fetched  int64 // narinfos read so far
	Elapsed  time.Duration
	Done     bool // the last call: listing and reading have finished
}
