package uploader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
)

// Upload publishes the closure of the store path root to the cache and
// returns when every member is in the cache or has failed. It is UploadBatch
// for one root.
func (u *Uploader) Upload(ctx context.Context, root string) (Result, error) {
	var res Result
	var err error
	u.UploadBatch(ctx, []string{root}, func(_ string, r Result, e error) { res, err = r, e })
	return res, err
}

// UploadBatch publishes the closures of roots together: one metadata query
// (nix path-info) for all of them, one lookup pass over the union of their
// closures, and every missing path uploaded once. done is called exactly
// once for each distinct root, from any goroutine and possibly concurrently
// (done must be safe for that), as soon as that root's
// closure is published or has failed; UploadBatch returns after the last
// call to done has returned.
//
// Members whose narinfo is already in the cache are skipped. A member fresh
// in the presence cache is taken as present without a request, unless a
// path to be uploaded refers to it: then it is looked up first, and uploaded
// when it turns out missing. Other members are looked up (HEAD on the
// narinfo, LookupConcurrency at once). The missing ones are uploaded in
// parallel, at most Concurrency NARs streaming at once, each NAR verified
// against the store's NarHash and NarSize; a path's narinfo is written only
// after the narinfos of all its references, so the cache is consistent for
// Nix clients at every moment, whatever fails. Paths also needed by a
// concurrent call are uploaded once and waited for by both.
//
// On failure the paths that could be published are published, the others
// (and everything referring to them) are not, and a root's error names the
// failed path, wrapping its cause for Classify: ErrPathGone when the root or
// a member vanished from the store, ErrHashMismatch when contents do not
// match the store's database, the cache's error otherwise. One root that is
// gone does not fail the others. When ctx is done UploadBatch returns
// promptly; uploads that no other call needs are cancelled, and a cancelled
// NAR upload commits nothing.
func (u *Uploader) UploadBatch(ctx context.Context, roots []string, done func(root string, res Result, err error)) {
	u.uploadBatch(ctx, roots, false, done)
}

// Republish is UploadBatch for roots whose entries in the cache are known
// to be broken (a NAR deleted or truncated, a narinfo that does not parse
// or is not signed by a trusted key): every root is uploaded again, NAR and
// then narinfo, even though its narinfo exists, and so is every member of
// their closures whose narinfo is missing; present members are kept. The
// narinfo is overwritten only once the new NAR is in place and the
// narinfos of all references are present, so the repair never leaves a
// moment where a narinfo points at something missing that it did not
// already point at. The presence cache is neither trusted nor consulted
// for the roots.
func (u *Uploader) Republish(ctx context.Context, roots []string, done func(root string, res Result, err error)) {
	u.uploadBatch(ctx, roots, true, done)
}

func (u *Uploader) uploadBatch(ctx context.Context, roots []string, force bool, done func(root string, res Result, err error)) {
	roots = slices.Compact(slices.Sorted(slices.Values(roots)))
	// A garbage-collected root would fail the batch's metadata query; take
	// it out first.
	var live []string
	for _, r := range roots {
		if _, err := os.Lstat(r); errors.Is(err, os.ErrNotExist) {
			done(r, Result{}, fmt.Errorf("uploader: upload %s: %w", r, ErrPathGone))
			continue
		}
		live = append(live, r)
	}
	if !force {
		live = u.skipFreshRoots(ctx, live, done)
	}
	if len(live) == 0 {
		return
	}
	log := u.log
	if len(live) == 1 {
		log = log.With(zap.String("root", live[0]))
	}
	// Over a network, listing the cache (when it will be used) costs no
	// round trip of its own if it runs during the metadata query.
	pre := u.startPrelist(ctx)
	defer pre.stop()
	infos, err := u.src.PathInfo(ctx, live, true)
	if err != nil {
		if len(live) > 1 && ctx.Err() == nil {
			// Something about one root (a path on disk but not valid in the
			// store, say) fails the whole query: go one by one, so that it
			// fails alone.
			log.Debug("batch metadata query failed; querying roots one by one", zap.Error(err))
			pre.stop()
			for _, r := range live {
				u.uploadBatch(ctx, []string{r}, force, done)
			}
			return
		}
		for _, r := range live {
			done(r, Result{}, fmt.Errorf("uploader: upload %s: %w", r, err))
		}
		return
	}
	p, err := newPlan(u.cfg.StoreDir, live, infos)
	if err == nil {
		if force {
			p.force = live
		}
		err = u.lookup(ctx, p, pre, log)
	}
	if err != nil {
		for _, r := range live {
			done(r, Result{}, fmt.Errorf("uploader: upload %s: %w", r, err))
		}
		return
	}
	var found []string
	for _, r := range live {
		if p.state[r] == statePresent || p.state[r] == stateCached {
			found = append(found, r)
		}
	}
	u.reassert(ctx, found)
	p.applyFilters(u.filter)
	owners := p.filterOwners(live)
	excluded, held := p.filtered()
	if len(excluded) > 0 {
		for _, path := range excluded {
			log.Warn("not uploading: excluded by a filter", zap.String("path", path), zap.String("reason", p.why[path]))
		}
		for _, path := range held {
			log.Warn("not uploading: refers to an excluded path", zap.String("path", path), zap.String("held_back_by", p.heldBy[path]))
		}
	}
	missing := p.missing()
	if len(missing) == 0 && len(excluded) == 0 {
		log.Debug("closures already in the cache", zap.Int("roots", len(live)), zap.Int("paths", len(p.paths)))
	} else {
		log.Info("uploading closures", zap.Int("roots", len(live)), zap.Int("paths", len(p.paths)), zap.Int("missing", len(missing)),
			zap.Int("excluded", len(excluded)), zap.Int("held_back", len(held)))
	}
	if o := u.cfg.Observer; o != nil {
		for _, root := range live {
			if !follows(o, root) {
				continue
			}
			closure, sizes := p.observe(root)
			o.Planned(root, closure, sizes)
		}
	}
	flights := make(map[string]*flight, len(missing))
	u.mu.Lock()
	u.plans[p] = struct{}{}
	u.mu.Unlock()
	// Flights start references first, and the streaming slots serve
	// waiters in the order they asked: NARs then go up mostly from the
	// bottom of the closure, so each narinfo, which must wait for its
	// references' narinfos, can follow its NAR at once instead of the whole
	// chain of narinfos, one round trip per level, waiting for the last NAR.
	for _, path := range p.referencesFirst(missing) {
		flights[path] = u.acquire(ctx, p, path)
	}
	defer func() {
		u.mu.Lock()
		delete(u.plans, p)
		u.mu.Unlock()
		for _, f := range flights {
			u.release(f)
		}
	}()

	// Each upload counts for the first root (in order) that needs it, so
	// that results summed over roots count every upload once.
	var mu sync.Mutex
	counted := make(map[*flight]bool)
	var wg sync.WaitGroup
	for _, root := range live {
		wg.Go(func() {
			res, err := u.await(ctx, root, p, flights, &mu, counted, owners)
			done(root, res, err)
		})
	}
	wg.Wait()
}

// skipFreshRoots reports as done, without querying anything, the roots whose
// own narinfo the presence cache has seen within PresenceTTL, and returns
// the others. A narinfo is only ever published after the narinfos of its
// references, so a present root stands for its whole closure; the presence
// TTL bounds how long this shortcut can trust a cache whose objects expire
// (after it, the closure is checked path by path again). A skipped root
// counts as one skipped path, and is re-asserted (SetRoots).
func (u *Uploader) skipFreshRoots(ctx context.Context, roots []string, done func(string, Result, error)) []string {
	if u.presence == nil || u.cfg.PresenceTTL <= 0 || len(roots) == 0 {
		return roots
	}
	keys := make([]string, 0, len(roots))
	keyOf := make(map[string]string, len(roots))
	for _, r := range roots {
		if sp, err := nix.ParseStorePath(u.cfg.StoreDir, r); err == nil {
			keyOf[r] = narinfoKey(sp)
			keys = append(keys, keyOf[r])
		}
	}
	fresh, err := u.presence.PresentFresh(keys, u.cfg.PresenceTTL)
	if err != nil {
		u.log.Warn("presence cache unreadable; checking every closure", zap.Error(err))
		return roots
	}
	var rest, skipped []string
	for _, r := range roots {
		if k, ok := keyOf[r]; ok && fresh[k] {
			skipped = append(skipped, r)
			continue
		}
		rest = append(rest, r)
	}
	u.reassert(ctx, skipped)
	for _, r := range skipped {
		if o := u.cfg.Observer; o != nil && follows(o, r) {
			o.Planned(r, []string{r}, nil)
		}
		done(r, Result{Skipped: 1}, nil)
	}
	return rest
}

// await waits for the uploads root's closure needs and sums them up.
func (u *Uploader) await(ctx context.Context, root string, p *plan, flights map[string]*flight, mu *sync.Mutex, counted map[*flight]bool, owners map[string]string) (Result, error) {
	res := Result{HeldBy: p.heldBackBy(root)}
	var mine []*flight
	for _, path := range p.closure(root) {
		switch f := flights[path]; {
		case f != nil:
			mine = append(mine, f)
		case p.state[path] == stateExcluded:
			if owners[path] == root {
				res.Excluded++
			}
		case p.state[path] == stateHeldBack:
			if owners[path] == root {
				res.HeldBack++
			}
		default:
			res.Skipped++
		}
	}
	for _, f := range mine {
		select {
		case <-f.done:
		case <-ctx.Done():
			return res, fmt.Errorf("uploader: upload %s: %w", root, ctx.Err())
		}
	}
	var failed []*flight
	mu.Lock()
	defer mu.Unlock()
	for _, f := range mine {
		switch {
		case f.err != nil:
			failed = append(failed, f)
		case f.owner == p && !counted[f]:
			counted[f] = true
			res.Uploaded++
			res.Bytes += f.nar.fileSize
			res.NarBytes += f.nar.narSize
		default:
			res.Skipped++
		}
	}
	if len(failed) > 0 {
		return res, uploadError(root, failed)
	}
	return res, nil
}

// uploadError picks the error to report for a failed root: the root's own
// when it failed (it names the chain of references down to the cause), else
// the first failure that is not merely a failed reference.
func uploadError(root string, failed []*flight) error {
	var pick *flight
	for _, f := range failed {
		if f.path == root {
			pick = f
		}
	}
	for _, f := range failed {
		var re *refError
		if pick == nil && !errors.As(f.err, &re) {
			pick = f
		}
	}
	if pick == nil {
		pick = failed[0]
	}
	if len(failed) == 1 {
		return fmt.Errorf("uploader: upload %s: %w", root, pick.err)
	}
	return fmt.Errorf("uploader: upload %s (%d paths failed): %w", root, len(failed), pick.err)
}

// follows reports whether o wants root's plan (see Observer).
func follows(o Observer, root string) bool {
	f, ok := o.(interface{ Follows(root string) bool })
	return !ok || f.Follows(root)
}
