package uploader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Garbage collection (package gc) may delete a path between the lookup that
// found it present and the publication of a narinfo referring to it. The
// uploader closes that race with a bounded gap: right before a narinfo is
// written, every reference this call did not upload itself, and the path's
// own NAR, are looked up again if they were last seen more than
// RecheckAfter ago, and the narinfo write must then finish within
// PublishTimeout. gc waits longer than the sum after its deletions and then
// looks again for new narinfos (see gc's package documentation).
const (
	// RecheckAfter is how old the last sight of a reference may be when a
	// narinfo referring to it is written.
	RecheckAfter = 10 * time.Second
	// PublishTimeout bounds the narinfo write that follows a recheck.
	PublishTimeout = 20 * time.Second
)

// recheckAfter is RecheckAfter; tests shorten it.
var recheckAfter = RecheckAfter

// ErrVanished reports that a reference, or the path's own NAR, disappeared
// from the cache while the path was being uploaded (garbage collection, or
// expiry). Nothing was published; the next attempt uploads what is missing.
var ErrVanished = errors.New("uploader: a reference vanished from the cache during the upload")

// recheck looks up again, before f's narinfo is written, the references of
// f's path that were last confirmed before RecheckAfter ago (at the plan's
// lookup) and f's NAR when it was written that long ago. narDone is when the
// NAR upload finished.
func (u *Uploader) recheck(ctx context.Context, f *flight, narDone time.Time, nar narResult, log *zap.Logger) error {
	p := f.owner
	now := time.Now()
	var keys []string
	if now.Sub(p.started) > recheckAfter {
		for _, r := range p.infos[f.path].References {
			if r == f.path {
				continue
			}
			if s := p.state[r]; s == statePresent || s == stateCached {
				keys = append(keys, narinfoKey(p.sps[r]))
			}
		}
	}
	if now.Sub(narDone) > recheckAfter && nar.url != "" {
		keys = append(keys, nar.url)
	}
	var gone []string
	for _, k := range keys {
		ok, err := u.cache.Has(ctx, k)
		if err != nil {
			return fmt.Errorf("uploader: recheck %s before publishing %s: %w", k, f.path, err)
		}
		if !ok {
			gone = append(gone, k)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	if u.presence != nil {
		if err := u.presence.ForgetPresent(gone); err != nil {
			log.Warn("presence cache: forget vanished entries", zap.Error(err))
		}
	}
	return fmt.Errorf("uploader: %s not published: %v gone from the cache: %w", f.path, gone, ErrVanished)
}
