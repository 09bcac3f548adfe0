package daemon

import (
	"errors"
	"fmt"
	"net"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/metrics"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/progress"
)

// Config configures a Daemon. The zero value of each field means its default.
type Config struct {
	// Socket is where the daemon listens, default hook.DefaultSocket.
	Socket string
	// Listener, when set, is used instead of creating Socket (socket
	// activation). The daemon closes it on shutdown.
	Listener net.Listener
	// StateDir holds the spool, default hook.DefaultStateDir.
	StateDir string
	// StoreDir is the Nix store directory, default /nix/store.
	StoreDir string
	// Workers is how many queued paths are processed at once, default 4.
	Workers int
	// AllowGroup names a group (or numeric gid) whose members may enqueue
	// and retry, besides root and the daemon's own user. The socket is
	// given this group.
	AllowGroup string
	// BatchSize is the most queue items one worker takes at once, default
	// 256. A batch shares one metadata query and one cache lookup pass.
	BatchSize int
	// ShutdownGrace bounds how long in-flight uploads may run after
	// shutdown begins, default 10s.
	ShutdownGrace time.Duration
	// SpoolInterval is how often the spool is scanned, default 1s.
	SpoolInterval time.Duration
	// StoreName names the cache in status output (no credentials).
	StoreName string
	// PublicKey is the public half of the signing key, shown in status so
	// that clients' trusted-public-keys can be checked against it.
	PublicKey string
	// LastGC, when set, tells status about the cache's last garbage
	// collection; it must not block.
	LastGC func() *hook.GCSummary
	// Metrics, when set, receives upload latencies and failure reasons.
	Metrics *metrics.Metrics

	// MaxConns bounds the connections served at once, default 1024. One
	// more is accepted and closed at once, so a client (the hook) sees
	// the refusal instead of waiting in the listen backlog.
	MaxConns int
	// MaxConnsPerUID bounds the connections of one user other than root
	// and the daemon's own user, default 32, so that one local user
	// cannot take all of MaxConns.
	MaxConnsPerUID int
	// IdleTimeout closes a connection that starts no request for this
	// long, default 2 minutes.
	IdleTimeout time.Duration
	// RequestTimeout bounds one whole request from its first byte: reading
	// it, carrying it out and writing the reply, default 30s.
	RequestTimeout time.Duration
	// Progress, when set, is the Observer of the daemon's uploader: wait
	// answers then report the progress of closures being uploaded, not
	// only of finished ones. New makes it follow only the roots someone
	// waits for when the uploader plans them.
	Progress *progress.Tracker
}

func (c *Config) applyDefaults() {
	if c.Socket == "" {
		c.Socket = hook.DefaultSocket
	}
	if c.StateDir == "" {
		c.StateDir = hook.DefaultStateDir
	}
	if c.StoreDir == "" {
		c.StoreDir = nix.DefaultStoreDir
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.BatchSize == 0 {
		c.BatchSize = 256
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.SpoolInterval == 0 {
		c.SpoolInterval = time.Second
	}
	if c.MaxConns == 0 {
		c.MaxConns = 1024
	}
	if c.MaxConnsPerUID == 0 {
		c.MaxConnsPerUID = 32
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
}

// Validate reports the first invalid setting, after defaults are applied.
func (c Config) Validate() error {
	c.applyDefaults()
	switch {
	case c.Workers < 1 || c.Workers > 1024:
		return fmt.Errorf("daemon: workers must be between 1 and 1024, got %d", c.Workers)
	case c.BatchSize < 1:
		return fmt.Errorf("daemon: batch size must be at least 1, got %d", c.BatchSize)
	case !filepath.IsAbs(c.StateDir):
		return fmt.Errorf("daemon: state directory %q must be absolute", c.StateDir)
	case c.Listener == nil && !filepath.IsAbs(c.Socket):
		return fmt.Errorf("daemon: socket path %q must be absolute", c.Socket)
	case !filepath.IsAbs(c.StoreDir) || filepath.Clean(c.StoreDir) != c.StoreDir:
		return fmt.Errorf("daemon: store directory %q must be a clean absolute path", c.StoreDir)
	case c.ShutdownGrace < 0:
		return errors.New("daemon: shutdown grace must not be negative")
	case c.SpoolInterval < 10*time.Millisecond:
		return errors.New("daemon: spool interval must be at least 10ms")
	case c.MaxConns < 1 || c.MaxConnsPerUID < 1:
		return errors.New("daemon: connection limits must be at least 1")
	case c.IdleTimeout < 0 || c.RequestTimeout < 0:
		return errors.New("daemon: timeouts must not be negative")
	}
	if c.AllowGroup != "" {
		if _, err := lookupGroup(c.AllowGroup); err != nil {
			return err
		}
	}
	return nil
}

// lookupGroup resolves a group name or numeric gid.
func lookupGroup(g string) (int, error) {
	if gid, err := strconv.Atoi(g); err == nil && gid >= 0 {
		return gid, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("daemon: allowed group %q: %w", g, err)
	}
	gid, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return 0, fmt.Errorf("daemon: allowed group %q has non-numeric gid %q", g, grp.Gid)
	}
	return gid, nil
}
