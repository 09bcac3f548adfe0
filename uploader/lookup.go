package uploader

import (
	"context"
	"fmt"
	"path"
	"sync"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
)

// lookup sets the state of every closure member: fresh presence-cache
// entries are trusted without a request, the rest are looked up (HEAD on the
// narinfo) with at most LookupConcurrency requests in flight. Then every
// path known only from the presence cache that a missing path references is
// confirmed with a lookup; one that turns out missing is forgotten by the
// presence cache and uploaded like any other missing path. Paths in
// p.force are missing whatever the lookups said. A failing
// presence cache is logged and bypassed; a failing lookup fails the call.
func (u *Uploader) lookup(ctx context.Context, p *plan, pre *prelist, log *zap.Logger) error {
	var own []string
	for _, path := range p.paths {
		if u.upstream(p.infos[path]) {
			p.state[path] = stateUpstream
		} else {
			own = append(own, path)
		}
	}
	toAsk := own
	if u.presence != nil && len(own) > 0 {
		fresh, err := u.presence.PresentFresh(p.keys(own), u.cfg.PresenceTTL)
		if err != nil {
			log.Warn("presence cache unreadable; looking up every path", zap.Error(err))
		} else {
			toAsk = nil
			for _, path := range own {
				if fresh[narinfoKey(p.sps[path])] {
					p.state[path] = stateCached
				} else {
					toAsk = append(toAsk, path)
				}
			}
		}
	}
	found, err := u.findAll(ctx, p, toAsk, pre, log)
	if err != nil {
		return err
	}
	var present []string
	for i, path := range toAsk {
		if found[i] {
			p.state[path] = statePresent
			present = append(present, path)
		} else {
			p.state[path] = stateMissing
		}
	}
	u.markPresent(p.keys(present), log)
	for _, path := range p.force {
		p.state[path] = stateMissing
	}

	// Confirming may turn up missing paths, whose references then need
	// confirming too; each round settles at least one path, so this ends.
	for {
		confirm := p.unconfirmedRefs()
		if len(confirm) == 0 {
			return nil
		}
		found, err := u.hasAll(ctx, p, confirm)
		if err != nil {
			return err
		}
		var present, stale []string
		for i, path := range confirm {
			if found[i] {
				p.state[path] = statePresent
				present = append(present, path)
			} else {
				p.state[path] = stateMissing
				stale = append(stale, path)
			}
		}
		u.markPresent(p.keys(present), log)
		if len(stale) > 0 {
			log.Warn("presence cache listed missing narinfos; uploading them", zap.Strings("paths", stale))
			if u.presence != nil {
				if err := u.presence.ForgetPresent(p.keys(stale)); err != nil {
					log.Warn("presence cache: forget stale entries", zap.Error(err))
				}
			}
		}
	}
}

// upstream reports whether info carries a valid signature, over the path's
// fingerprint, by one of the keys in Config.SkipSignedBy. A signature that
// only bears an upstream key's name, or whose fingerprint cannot be
// computed, does not count: the path is then uploaded like any other.
func (u *Uploader) upstream(info *PathInfo) bool {
	if len(u.upstreamKeys) == 0 || len(info.Sigs) == 0 {
		return false
	}
	ni := nix.NarInfo{StorePath: info.Path, NarHash: info.NarHash, NarSize: info.NarSize}
	for _, r := range info.References {
		ni.References = append(ni.References, path.Base(r))
	}
	fp, err := ni.Fingerprint(u.cfg.StoreDir)
	if err != nil {
		return false
	}
	for _, sig := range info.Sigs {
		for _, k := range u.upstreamKeys {
			if k.Verify(fp, sig) {
				return true
			}
		}
	}
	return false
}

// markPresent records keys in the presence cache. Failure only costs lookups
// later, so it is logged, not returned.
func (u *Uploader) markPresent(keys []string, log *zap.Logger) {
	if u.presence == nil || len(keys) == 0 {
		return
	}
	if err := u.presence.MarkPresent(keys); err != nil {
		log.Warn("presence cache: mark present", zap.Error(err))
	}
}

// hasAll looks up the narinfos of paths with at most LookupConcurrency
// requests at once over all concurrent calls (the cache may limit further:
// the S3 backend adapts its own limit to the server). found[i] is the answer for paths[i]. The first error
// cancels the other lookups and is returned.
func (u *Uploader) hasAll(ctx context.Context, p *plan, paths []string) (found []bool, err error) {
	found = make([]bool, len(paths))
	if len(paths) == 0 {
		return found, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		next    = make(chan int)
	)
	for range min(u.cfg.LookupConcurrency, len(paths)) {
		wg.Go(func() {
			for i := range next {
				key := narinfoKey(p.sps[paths[i]])
				var ok bool
				var hasErr error
				select {
				case u.lookups <- struct{}{}:
					ok, hasErr = u.cache.Has(ctx, key)
					<-u.lookups
				case <-ctx.Done():
					hasErr = ctx.Err()
				}
				if hasErr != nil {
					errOnce.Do(func() {
						err = fmt.Errorf("uploader: look up %s for %s: %w", key, paths[i], hasErr)
						cancel()
					})
					continue
				}
				found[i] = ok
			}
		})
	}
feed:
	for i := range paths {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("uploader: look up narinfos: %w", ctx.Err())
	}
	return found, err
}
