package uploader

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
)

// Roots records that a queued root found already in the cache is still
// wanted, so that garbage collection keeps its closure although its narinfo
// is old. gc.Reasserter implements it; it bounds its own cost (at most one
// small write per root per day).
type Roots interface {
	Reassert(ctx context.Context, root nix.StorePath) error
}

// SetRoots makes the uploader re-assert roots that it finds already in the
// cache. Call it before the first Upload; nil turns re-assertion off.
func (u *Uploader) SetRoots(r Roots) { u.roots = r }

// freshlyPublished: a root this process published less than this long ago
// is not re-asserted. Its narinfo is that young, so its own age keeps it
// (for any keep period of a day or more); the next push after this time
// writes the record. It saves a write for every build output that a
// worker finds already uploaded as part of another output's closure.
const freshlyPublished = time.Hour

// reassert records each of roots as still wanted. A failure is logged: it
// must not fail an upload whose closure is in the cache.
func (u *Uploader) reassert(ctx context.Context, roots []string) {
	if u.roots == nil {
		return
	}
	now := time.Now()
	for _, r := range roots {
		u.mu.Lock()
		at, mine := u.published[r]
		u.mu.Unlock()
		if mine && now.Sub(at) < freshlyPublished {
			continue
		}
		sp, err := nix.ParseStorePath(u.cfg.StoreDir, r)
		if err != nil {
			continue
		}
		if err := u.roots.Reassert(ctx, sp); err != nil {
			u.log.Warn("could not record that a root is still wanted; gc may collect it", zap.String("root", r), zap.Error(err))
		}
	}
}
