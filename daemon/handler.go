package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/progress"
	"github.com/nixs3q/nixs3q/queue"
	"github.com/nixs3q/nixs3q/uploader"
)

// handler is the daemon's side of the protocol: hook.Server decodes and
// checks requests, handler carries them out against the queue. It is safe
// for concurrent use.
type handler struct {
	storeDir, stateDir, storeName string
	wantsBuild                    func(drv string) bool // nil: every build is wanted
	publicKey                     string                // of the signing key, for status
	q                             *queue.Queue
	access                        access
	active                        func() []queue.Item        // items the workers process
	transfers                     func() []uploader.Transfer // NARs being uploaded
	expedite                      func(roots []string)       // nil: uploads cannot be sped up
	meter                         *rateMeter
	waiters                       *waiters
	tracker                       *progress.Tracker      // nil: no progress of uploads in flight
	lastGC                        func() *hook.GCSummary // nil: not known
	log                           *zap.Logger
}

var _ hook.Handler = (*handler)(nil)

// Access lets root, the daemon's own user and the allowed group change the
// queue; everyone else may only read its status.
func (h *handler) Access(p hook.Peer) hook.Access {
	if h.access.mayWrite(p) {
		return hook.ReadWrite
	}
	return hook.ReadOnly
}

// validatePath returns why path may not be queued, or "" when it may: it
// must be a store path in storeDir and exist, or a build item
// (hook.BuildItem) of a derivation that exists.
func validatePath(storeDir, path string) string {
	if drv, ok := hook.BuildDrv(path); ok {
		if !strings.HasSuffix(drv, ".drv") {
			return "is not a derivation followed by " + hook.BuildSuffix
		}
		path = drv
	}
	if _, err := nix.ParseStorePath(storeDir, path); err != nil {
		return err.Error()
	}
	if _, err := os.Lstat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "does not exist (not built, or garbage-collected)"
		}
		return err.Error()
	}
	return ""
}

// Enqueue validates every path and, when all are valid, queues them
// durably, together with the build of req.Drv (hook.BuildItem) when that
// names an existing derivation and the uploader has something to publish
// for it (a log, realisations). With any invalid path it queues nothing and
// returns a *hook.RefusedError. An unusable Drv refuses nothing: it is only
// a hint, and the outputs must not be lost for it; it is logged and left
// out.
func (h *handler) Enqueue(ctx context.Context, p hook.Peer, req hook.EnqueueRequest) (hook.EnqueueResult, error) {
	var refused []hook.Refusal
	n := 0
	for _, path := range req.Paths {
		if why := validatePath(h.storeDir, path); why != "" {
			n++
			if len(refused) < hook.MaxRefusals {
				refused = append(refused, hook.Refusal{Path: path, Reason: why})
			}
		}
	}
	if n > 0 {
		return hook.EnqueueResult{}, &hook.RefusedError{Refused: refused, Total: len(req.Paths), Count: n}
	}
	items := req.Paths
	if req.Drv != "" {
		build := hook.BuildItem(req.Drv)
		switch why := validatePath(h.storeDir, build); {
		case why != "":
			h.log.Warn("ignoring the derivation of an enqueue request", zap.String("drv", req.Drv), zap.String("reason", why))
		case h.wantsBuild == nil || h.wantsBuild(req.Drv):
			items = append(items[:len(items):len(items)], build)
		}
	}
	if len(items) == 0 {
		return hook.EnqueueResult{}, &hook.RefusedError{Refused: []hook.Refusal{{Path: req.Drv, Reason: "no paths, and the derivation cannot be queued"}}, Total: 1, Count: 1}
	}
	res, err := h.q.Enqueue(ctx, items)
	if err != nil {
		h.log.Error("enqueue failed", zap.Error(err))
		return hook.EnqueueResult{}, fmt.Errorf("enqueue failed: %w", err)
	}
	if res.Added+res.Requeued > 0 {
		h.log.Debug("queued", zap.Strings("paths", items), zap.String("source", req.Source),
			zap.String("drv", req.Drv), zap.Int("added", res.Added), zap.Int("pid", p.PID))
	}
	return hook.EnqueueResult{Added: res.Added, AlreadyQueued: res.AlreadyQueued, Requeued: res.Requeued}, nil
}

// Retry moves failed items back to pending.
func (h *handler) Retry(ctx context.Context, p hook.Peer, paths []string) (hook.RetryResult, error) {
	n, err := h.q.Retry(paths)
	if err != nil {
		return hook.RetryResult{}, fmt.Errorf("retry failed: %w", err)
	}
	if n > 0 {
		h.log.Info("failed items moved back to pending", zap.Int("count", n), zap.Int("uid", p.UID))
	}
	return hook.RetryResult{Retried: n}, nil
}

// eventLog writes what hook.Server cannot tell a client to the log, each
// kind of event but a failed read at most once a second, with the count of
// those held back, so that a flood of refusals cannot flood the log.
type eventLog struct {
	log  *zap.Logger
	mu   sync.Mutex
	next map[hook.EventKind]time.Time
	held map[hook.EventKind]int
}

func newEventLog(log *zap.Logger) *eventLog {
	return &eventLog{log: log, next: map[hook.EventKind]time.Time{}, held: map[hook.EventKind]int{}}
}

// report logs e unless one of its kind was logged less than a second ago.
func (l *eventLog) report(e hook.Event) {
	suppressed := 0
	if e.Kind != hook.EventReadFailed {
		now := time.Now()
		l.mu.Lock()
		if now.Before(l.next[e.Kind]) {
			l.held[e.Kind]++
			l.mu.Unlock()
			return
		}
		suppressed = l.held[e.Kind]
		l.held[e.Kind] = 0
		l.next[e.Kind] = now.Add(time.Second)
		l.mu.Unlock()
	}
	logEvent(l.log, e, suppressed)
}

// logEvent writes one event; suppressed counts the events of its kind held
// back since the last one written.
func logEvent(log *zap.Logger, e hook.Event, suppressed int) {
	switch e.Kind {
	case hook.EventAcceptFailed:
		log.Warn("accept failed; backing off", zap.Error(e.Err), zap.Duration("backoff", e.Backoff),
			zap.Bool("out_of_descriptors", errors.Is(e.Err, syscall.EMFILE) || errors.Is(e.Err, syscall.ENFILE)),
			zap.Int("suppressed", suppressed))
	case hook.EventNoCredentials:
		log.Warn("rejecting connection", zap.Error(e.Err), zap.Int("suppressed", suppressed))
	case hook.EventDenied:
		log.Warn("refused request from unauthorised user", zap.String("op", e.Op), zap.Int("uid", e.Peer.UID),
			zap.Int("pid", e.Peer.PID), zap.Int("suppressed", suppressed))
	case hook.EventConnLimit:
		log.Warn("connection limit reached; refusing connection", zap.Int("uid", e.Peer.UID),
			zap.Int("pid", e.Peer.PID), zap.Int("suppressed", suppressed))
	default:
		log.Debug("connection read failed", zap.Error(e.Err), zap.Int("pid", e.Peer.PID))
	}
}
