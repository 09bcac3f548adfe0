package gc

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
)

// Reasserter records in the cache that roots found already there are still
// wanted. It implements uploader.Roots. Each record is one small PUT of a
// key that depends only on the root and the UTC day, so builders sharing a
// bucket write the same keys with the same bodies and need no coordination.
// The presence cache (when given) remembers which records this machine has
// written, so a root costs at most one write per day and no request at all
// once it was re-asserted today. It is safe for concurrent use.
type Reasserter struct {
	cache    uploader.Cache
	presence uploader.Presence // may be nil: then every call writes
	now      func() time.Time
}

var _ uploader.Roots = (*Reasserter)(nil)

// NewReasserter returns a Reasserter writing to cache. presence may be nil;
// now nil means time.Now.
func NewReasserter(cache uploader.Cache, presence uploader.Presence, now func() time.Time) *Reasserter {
	if now == nil {
		now = time.Now
	}
	return &Reasserter{cache: cache, presence: presence, now: now}
}

// Reassert records that sp is wanted today. It returns without a request
// when the presence cache says this machine already wrote today's record. A
// failing presence cache only costs the write.
func (r *Reasserter) Reassert(ctx context.Context, sp nix.StorePath) error {
	key := RootKey(sp, r.now())
	if r.presence != nil {
		fresh, err := r.presence.PresentFresh([]string{key}, 24*time.Hour)
		if err == nil && fresh[key] {
			return nil
		}
	}
	body := []byte(sp.String() + "\n")
	if err := r.cache.Put(ctx, key, bytes.NewReader(body), uploader.PutOptions{ContentType: "text/plain; charset=utf-8", Size: int64(len(body))}); err != nil {
		return fmt.Errorf("gc: re-assert %s: %w", sp, err)
	}
	if r.presence != nil {
		// Losing this mark costs one more write, nothing else.
		_ = r.presence.MarkPresent([]string{key})
	}
	return nil
}
