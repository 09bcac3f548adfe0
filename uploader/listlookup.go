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
func (u *Uploader) findAll(ctx context.Context, p *plan, paths []string, log *zap.Logger) ([]bool, error) {
	tl, ok := u.cache.(TopLister)
	budget := int64(u.cfg.ListRatio) * int64(len(paths))
	if !ok || u.cfg.ListRatio < 0 || len(paths) < listMinPaths || u.noList.Load() {
		return u.hasAll(ctx, p, paths)
	}
	if est := u.bucketKeys.Load(); est > budget {
		return u.hasAll(ctx, p, paths)
	}
	found, listed, err := u.listAll(ctx, tl, p, paths, budget)
	switch {
	case err == nil:
		u.bucketKeys.Store(listed)
		log.Debug("looked up closure by listing", zap.Int("paths", len(paths)), zap.Int64("keys_listed", listed))
		return found, nil
	case ctx.Err() != nil:
		return nil, fmt.Errorf("uploader: list narinfos: %w", ctx.Err())
	case errors.Is(err, errBucketTooLarge):
		u.bucketKeys.Store(listed)
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

// listAll lists the narinfos at the top of the cache, as 32 listings side by
// side, one per first character of the hash part, and reports which of
// paths it saw. listed is the number of keys listed or, when a listing
// stopped because its share exceeded budget/32 (errBucketTooLarge), an
// estimate of the bucket's size from that share.
func (u *Uploader) listAll(ctx context.Context, tl TopLister, p *plan, paths []string, budget int64) (found []bool, listed int64, err error) {
	index := make(map[string]int, len(paths))
	for i, path := range paths {
		index[narinfoKey(p.sps[path])] = i
	}
	found = make([]bool, len(paths))
	// Shares are uneven by chance; allow half as much again, and at
	// least one full page.
	share := max(budget*3/2/int64(len(nix.Base32Alphabet)), 1000)
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
				if i, ok := index[o.Key]; ok && strings.HasSuffix(o.Key, ".narinfo") {
					found[i] = true // each key belongs to one prefix: one writer per index
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
			return nil, over.Load(), err
		}
		return nil, 0, err
	}
	if ctx.Err() != nil {
		return nil, 0, ctx.Err()
	}
	return found, total.Load(), nil
}
