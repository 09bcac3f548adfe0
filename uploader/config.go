package uploader

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

// Compression methods.
const (
	CompressionZstd = "zstd"
	CompressionXz   = "xz"
	CompressionNone = "none"
)

// Defaults of Config and Format.
const (
	DefaultCompression       = CompressionZstd
	DefaultConcurrency       = 4
	DefaultLookupConcurrency = 256
	DefaultPresenceTTL       = time.Hour
	DefaultListRatio         = 20
	// DefaultPriority is the Priority of nix-cache-info, the value Nix's
	// own binary caches use.
	DefaultPriority = 40
	// DefaultLogDir is where Nix keeps build logs, in drvs/.
	DefaultLogDir = "/nix/var/log/nix"
)

// Config tunes an Uploader. Zero fields take the documented defaults, except
// PresenceTTL and Format.WantMassQuery, whose zero values (presence cache
// off, false) are valid choices: start from DefaultConfig to get every
// default.
type Config struct {
	// StoreDir is the store directory of the paths uploaded and of the
	// cache; default nix.DefaultStoreDir.
	StoreDir string

	// Format is how the cache is written: the settings a store URL
	// carries besides where the cache is (see package storeurl).
	Format

	// Concurrency is the number of NARs streamed at once; default 4.
	Concurrency int

	// LookupConcurrency is the number of narinfo lookups (HEAD) in flight
	// at once, over all concurrent Upload calls; default 256. Over a
	// network each lookup costs a round trip, so this is what makes
	// checking a large closure fast; the S3 backend further adapts the
	// number of requests in flight to what the server accepts.
	LookupConcurrency int

	// ListRatio decides when a closure is looked up by listing the cache's
	// narinfos instead of one request per path (caches that implement
	// TopLister, such as S3): when the cache holds at most ListRatio keys
	// per path to look up. Default 20: a listing request returns 1,000
	// keys, so at 20 it replaces at least 50 lookups, which pays off in
	// round trips, request rate and, at AWS prices (a LIST costs as much as
	// 12.5 GETs), in money. Negative: never list.
	ListRatio int

	// PresenceTTL is how long a narinfo recorded as present in the presence
	// cache is trusted without asking the cache (DefaultConfig: 1h). 0
	// disables the presence cache: it is neither read nor written.
	PresenceTTL time.Duration

	// SkipSignedBy lists public keys of upstream caches in the form of
	// Nix's trusted-public-keys, "<name>:<base64 of 32 bytes>" (for example
	// "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=").
	// A closure member whose store metadata carries a signature by one of
	// them that verifies over the path's fingerprint is not uploaded:
	// clients get it from that upstream cache, and paths referring to it
	// are still published. A signature that merely carries the key's name
	// does not count. The cache then holds complete closures only together
	// with the upstream cache, so clients must use both. Empty: upload
	// every closure member.
	SkipSignedBy []string

	// Observer, when set, is told what Upload calls plan and finish, for
	// progress displays. Nil: nobody is told.
	Observer Observer

	// Filters leave closure members out of the cache by name or NAR size,
	// together with what refers to them (see Filters). Zero: none.
	Filters Filters

	// UploadLogs is LogsNone (the default: logs may hold what a public
	// cache should not) or LogsAll; see PublishBuild.
	UploadLogs string
	// LogDir is Nix's log directory (NIX_LOG_DIR); default
	// DefaultLogDir.
	LogDir string
}

// Format is how objects are written to the cache. Zero fields take the
// documented defaults, except WantMassQuery (false is a valid choice): start
// from DefaultFormat to get every default.
type Format struct {
	// Compression of NARs: "zstd" (default), "xz" or "none".
	Compression string

	// CompressionLevel 0 picks the compressor's default. zstd takes 1..22,
	// mapped onto the encoder's speed levels as
	// zstd.EncoderLevelFromZstd does (1 fastest, 3 default, 22 best; level
	// 3 is what Nix uses). xz takes 1..9, the xz presets, which choose the
	// dictionary size: 1 → 1 MiB, 2 → 2 MiB, 3-4 → 4 MiB, 5-6 → 8 MiB
	// (the default), 7 → 16 MiB, 8 → 32 MiB, 9 → 64 MiB. An xz stream
	// takes about six times its dictionary (48 MiB at the default, 330 MiB
	// at 9), once per concurrent upload; a zstd stream about 20 MiB.
	// "none" takes only 0.
	CompressionLevel int

	// Priority and WantMassQuery are written into nix-cache-info when the
	// cache has none. Priority defaults to DefaultPriority (40).
	Priority      int
	WantMassQuery bool

	// WriteNarListing uploads, beside each NAR, "<hashpart>.ls": the JSON
	// listing of the NAR's file tree that Nix writes with
	// write-nar-listing=1 (uncompressed, application/json). It is put after
	// the NAR and before the narinfo, so a published path always has its
	// listing. Off by default.
	WriteNarListing bool
}

// DefaultConfig returns a Config with every default filled in, including
// PresenceTTL 1h and WantMassQuery true.
func DefaultConfig() Config {
	return Config{Format: DefaultFormat(), PresenceTTL: DefaultPresenceTTL}.withDefaults()
}

// DefaultFormat returns a Format with every default filled in, including
// WantMassQuery true.
func DefaultFormat() Format {
	return Format{WantMassQuery: true}.withDefaults()
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	c.StoreDir = cmp.Or(c.StoreDir, nix.DefaultStoreDir)
	c.Format = c.Format.withDefaults()
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.LookupConcurrency = cmp.Or(c.LookupConcurrency, DefaultLookupConcurrency)
	c.UploadLogs = cmp.Or(c.UploadLogs, LogsNone)
	c.LogDir = cmp.Or(c.LogDir, DefaultLogDir)
	c.ListRatio = cmp.Or(c.ListRatio, DefaultListRatio)
	return c
}

// withDefaults fills the zero fields.
func (f Format) withDefaults() Format {
	f.Compression = cmp.Or(f.Compression, DefaultCompression)
	f.Priority = cmp.Or(f.Priority, DefaultPriority)
	return f
}

// Validate reports the first invalid field, treating zero fields as their
// defaults. It does not touch the network or the file system.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.StoreDir == "/" || !path.IsAbs(c.StoreDir) || path.Clean(c.StoreDir) != c.StoreDir {
		return fmt.Errorf("uploader: store directory %q is not a clean absolute path", c.StoreDir)
	}
	if err := c.Format.Validate(); err != nil {
		return err
	}
	if c.Concurrency < 0 {
		return errors.New("uploader: concurrency must be positive")
	}
	if c.LookupConcurrency < 0 {
		return errors.New("uploader: lookup concurrency must be positive")
	}
	if c.PresenceTTL < 0 {
		return errors.New("uploader: presence TTL must not be negative")
	}
	if err := c.Filters.Validate(); err != nil {
		return err
	}
	if c.UploadLogs != LogsNone && c.UploadLogs != LogsAll {
		if c.UploadLogs == "failed" {
			return errors.New(`uploader: upload-logs "failed" is not offered: Nix runs no post-build-hook after a failed build, so its log never reaches nixs3q (want none or all)`)
		}
		return fmt.Errorf("uploader: upload-logs %q: want none or all", c.UploadLogs)
	}
	if !path.IsAbs(c.LogDir) {
		return fmt.Errorf("uploader: log directory %q is not absolute", c.LogDir)
	}
	if _, err := c.upstreamKeys(); err != nil {
		return err
	}
	return nil
}

// upstreamKeys parses SkipSignedBy. A bare key name is refused with the form
// that is wanted, since a name alone can be put on a signature by anyone.
func (c Config) upstreamKeys() ([]nix.PublicKey, error) {
	keys := make([]nix.PublicKey, 0, len(c.SkipSignedBy))
	for _, s := range c.SkipSignedBy {
		if s != "" && !strings.ContainsAny(s, ": \t\r\n") {
			return nil, fmt.Errorf("uploader: upstream key %q is a bare key name; give the full public key "+
				"as in trusted-public-keys, %s:<base64 public key> (e.g. "+
				"cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=)", s, s)
		}
		k, err := nix.ParsePublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("uploader: upstream key: %w (want <name>:<base64 public key>, "+
				"as in trusted-public-keys)", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Validate reports the first invalid field, treating zero fields as their
// defaults. It is the one place where compression levels are checked.
func (f Format) Validate() error {
	f = f.withDefaults()
	var maxLevel int
	switch f.Compression {
	case CompressionZstd:
		maxLevel = 22
	case CompressionXz:
		maxLevel = 9
	case CompressionNone:
		maxLevel = 0
	default:
		return fmt.Errorf("uploader: unknown compression %q (want zstd, xz or none)", f.Compression)
	}
	if f.CompressionLevel < 0 || f.CompressionLevel > maxLevel {
		if maxLevel == 0 {
			return fmt.Errorf("uploader: compression none takes no level (got %d)", f.CompressionLevel)
		}
		return fmt.Errorf("uploader: compression %s takes levels 1 to %d (0 for the default), not %d",
			f.Compression, maxLevel, f.CompressionLevel)
	}
	if f.Priority < 0 {
		return errors.New("uploader: priority must not be negative")
	}
	return nil
}
