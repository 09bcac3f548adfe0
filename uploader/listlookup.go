package uploader

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
)

// Looking up a large closure by listing.
//
// Asking for each narinfo costs one request per path; listing the bucket
// costs one request per 1,000 keys, whatever the closure. Over a network,
// where every request is a round trip and servers rate-limit requests,
// listing wins when the bucket is not much larger than the closure: a cold
// check of 10,000 paths against a bucket of 10,000 narinfos takes 10
// listing requests (run as 32 listings side by side, one per first
// character of the hash, so about one round trip) instead of 10,000 HEADs.
// It loses when the bucket is much larger than the closure.
//
// The rule: a closure of at least listMinPaths paths to look up is listed
// when the bucket holds at most ListRatio narinfos (keys, in fact) per path
// to look up. The bucket's size is estimated from the last listing this
// process made; with no estimate, the listing itself measures it: each of
// the 32 listings stops, and the lookup falls back to one request per path,
// as soon as its share of the bucket exceeds its share of the budget. At
// worst that wastes about ListRatio × paths / 1,000 listing requests, once,
// after which the estimate sends later lookups straight to the per-path
// requests.
//
// When the process has no estimate yet (a fresh daemon: the cold case), the
// listing starts at once, one page per prefix, while `nix path-info` reads
// the closure, and answers the lookup if the rule then picks it; over a
// network that saves the listing's round trip. It also gives the estimate.
//
// A listing is not a snapshot: a narinfo written while it runs may be
// missed, and its path is then uploaded again, which is harmless (the same
// NAR and an equivalent narinfo, written in the same order). A narinfo
// listed is present as surely as one found by a HEAD a moment before. The
// presence cache and its TTL work the same either way.
//
// Listing needs s3:ListBucket. When it is denied, the process looks up path
// by path from then on.

// listMinPaths is the smallest number of paths looked up by listing: below
// it, requests for each path fit in one or two round trips anyway.
const listMinPaths = 64

// errBucketTooLarge stops a listing whose bucket is too large to pay off.
var errBucketTooLarge = errors.New("uploader: bucket too large to list for this closure")

// findAll reports for each of paths whether its narinfo is in the cache,
// by listing or by one lookup per path, whichever the rule above picks.
// pre, when not nil, is a listing started before the closure was known;
// it answers when the rule picks listing and it completed.
func (u *Uploader) findAll(ctx context.Context, p *plan, paths []string, pre *prelist, log *zap.Logger) ([]bool, error) {
	tl, ok := u.cache.(TopLister)
	budget := int64(u.cfg.ListRatio) * int64(len(paths))
	if !ok || u.cfg.ListRatio < 0 || len(paths) < listMinPaths || u.noList.Load() {
		return u.hasAll(ctx, p, paths)
	}
	if found, ok := pre.answer(ctx, p, paths, budget); ok {
		log.Debug("looked up closure by the listing made meanwhile", zap.Int("paths", len(paths)), zap.Int64("keys_listed", pre.listed))
		return found, nil
	}
	if est := u.bucketKeys.Load(); est > budget {
		return u.hasAll(ctx, p, paths)
	}
	found, listed, err := u.listAll(ctx, tl, p, paths, budget)
	switch {
	case err == nil:
		u.bucketKeys.Store(listed)
		u.estimated.Store(true)
		log.Debug("looked up closure by listing", zap.Int("paths", len(paths)), zap.Int64("keys_listed", listed))
		return found, nil
	case ctx.Err() != nil:
		return nil, fmt.Errorf("uploader: list narinfos: %w", ctx.Err())
	case errors.Is(err, errBucketTooLarge):
		u.bucketKeys.Store(listed)
		u.estimated.Store(true)
		log.Debug("bucket too large to list for this closure; looking up path by path",
			zap.Int("paths", len(paths)), zap.Int64("estimated_keys", listed))
	case errors.Is(err, ErrAccessDenied):
		u.noList.Store(true)
		log.Info("listing the cache is not allowed; looking up narinfos path by path", zap.Error(err))
	default:
		log.Warn("listing narinfos failed; looking up path by path", zap.Error(err))
	}
	return u.hasAll(ctx, p, paths)
}

// listAll lists the narinfos at the top of the cache (listTop) and reports
// which of paths it saw; listed is as listTop's.
func (u *Uploader) listAll(ctx context.Context, tl TopLister, p *plan, paths []string, budget int64) (found []bool, listed int64, err error) {
	index := make(map[string]int, len(paths))
	for i, path := range paths {
		index[narinfoKey(p.sps[path])] = i
	}
	found = make([]bool, len(paths))
	// Shares are uneven by chance; allow half as much again, and at
	// least one full page.
	share := max(budget*3/2/int64(len(nix.Base32Alphabet)), 1000)
	listed, err = u.listTop(ctx, tl, share, func(key string) {
		if i, ok := index[key]; ok {
			found[i] = true // each key belongs to one prefix: one writer per index
		}
	})
	if err != nil {
		return nil, listed, err
	}
	return found, listed, nil
}

// listTop lists the narinfo keys at the top of the cache, as 32 listings
// side by side, one per first character of the hash part, calling visit
// for each (concurrently, but never twice for one key). listed is the
// number of keys listed or, when a listing stopped because it passed share
// keys (errBucketTooLarge), an estimate of the bucket's size from that
// share.
func (u *Uploader) listTop(ctx context.Context, tl TopLister, share int64, visit func(key string)) (listed int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		total   atomic.Int64
		over    atomic.Int64 // keys of the share that overflowed, × 32
	)
	for _, c := range nix.Base32Alphabet {
		prefix := string(c)
		wg.Go(func() {
			select {
			case u.lookups <- struct{}{}:
				defer func() { <-u.lookups }()
			case <-ctx.Done():
				return
			}
			var n int64
			lerr := tl.ListTop(ctx, prefix, func(o Object) error {
				n++
				if n > share {
					return errBucketTooLarge
				}
				if strings.HasSuffix(o.Key, ".narinfo") {
					visit(o.Key)
				}
				return nil
			})
			total.Add(n)
			if lerr != nil {
				if errors.Is(lerr, errBucketTooLarge) {
					over.Store(n * int64(len(nix.Base32Alphabet)))
				}
				errOnce.Do(func() {
					err = lerr
					cancel()
				})
			}
		})
	}
	wg.Wait()
	if err != nil {
		if errors.Is(err, errBucketTooLarge) {
			return over.Load(), err
		}
		return 0, err
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	return total.Load(), nil
}

// prelist is a listing of the cache's narinfos started before the closure
// to check is known, overlapping the store metadata query; see
// startPrelist.
type prelist struct {
	cancel context.CancelFunc
	done   chan struct{}
	// After done: the narinfo keys seen, how many keys were listed (or
	// the estimate), and the error.
	keys   map[string]bool
	listed int64
	err    error
}

// prelistShare is the most keys per prefix a prelist reads: one page each,
// 32 requests in all, so that a prelist of a large bucket wastes little.
const prelistShare = 1000

// startPrelist starts listing the cache's narinfos in the background when
// lookups may be answered by listing and the process has no estimate of the
// bucket's size yet (its first check of a closure, the cold case: a fresh
// daemon, a new builder). Over a network the listing then costs no round
// trip of its own: it runs while `nix path-info` does. It returns nil when
// it does not apply. The caller must call stop.
func (u *Uploader) startPrelist(ctx context.Context) *prelist {
	tl, ok := u.cache.(TopLister)
	if !ok || u.cfg.ListRatio < 0 || u.noList.Load() || u.estimated.Load() {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	pl := &prelist{cancel: cancel, done: make(chan struct{}), keys: make(map[string]bool)}
	go func() {
		defer close(pl.done)
		var mu sync.Mutex
		pl.listed, pl.err = u.listTop(ctx, tl, prelistShare, func(key string) {
			mu.Lock()
			pl.keys[key] = true
			mu.Unlock()
		})
		switch {
		case pl.err == nil, errors.Is(pl.err, errBucketTooLarge):
			u.bucketKeys.Store(pl.listed)
			u.estimated.Store(true)
		case errors.Is(pl.err, ErrAccessDenied):
			u.noList.Store(true)
		}
	}()
	return pl
}

// stop cancels the listing if it still runs and waits for it.
func (pl *prelist) stop() {
	if pl != nil {
		pl.cancel()
		<-pl.done
	}
}

// answer reports, from a prelist that completed, whether each of paths has
// its narinfo in the cache, when the listing rule picks listing for them;
// ok is false when it does not, or the prelist failed or was cut short.
func (pl *prelist) answer(ctx context.Context, p *plan, paths []string, budget int64) (found []bool, ok bool) {
	if pl == nil || len(paths) < listMinPaths {
		return nil, false
	}
	select {
	case <-pl.done:
	case <-ctx.Done():
		return nil, false
	}
	if pl.err != nil || pl.listed > budget {
		return nil, false
	}
	found = make([]bool, len(paths))
	for i, path := range paths {
		found[i] = pl.keys[narinfoKey(p.sps[path])]
	}
	return found, true
}
