package uploader

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// Upload publishes the closure of the store path root to the cache and
// returns when every member is in the cache or has failed.
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
// concurrent Upload call are uploaded once and waited for by both.
//
// On failure the paths that could be published are published, the others
// (and everything referring to them) are not, and the error names the failed
// path, wrapping its cause for Classify: ErrPathGone when a path vanished
// from the store, ErrHashMismatch when its contents do not match the store's
// database, the cache's error otherwise. When ctx is done Upload returns
// promptly; uploads that no other call needs are cancelled, and a cancelled
// NAR upload commits nothing.
func (u *Uploader) Upload(ctx context.Context, root string) (Result, error) {
	log := u.log.With(zap.String("root", root))
	infos, err := u.src.PathInfo(ctx, []string{root}, true)
	if err != nil {
		return Result{}, fmt.Errorf("uploader: upload %s: %w", root, err)
	}
	p, err := newPlan(u.cfg.StoreDir, root, infos)
	if err != nil {
		return Result{}, err
	}
	if err := u.lookup(ctx, p, log); err != nil {
		return Result{}, fmt.Errorf("uploader: upload %s: %w", root, err)
	}
	missing := p.missing()
	res := Result{Skipped: len(p.paths) - len(missing)}
	if len(missing) == 0 {
		log.Debug("closure already in the cache", zap.Int("paths", len(p.paths)))
		return res, nil
	}
	log.Info("uploading closure", zap.Int("paths", len(p.paths)), zap.Int("missing", len(missing)))

	flights := make([]*flight, len(missing))
	for i, path := range missing {
		flights[i] = u.acquire(ctx, p, path)
	}
	defer func() {
		for _, f := range flights {
			u.release(f)
		}
	}()
	for _, f := range flights {
		select {
		case <-f.done:
		case <-ctx.Done():
			return res, fmt.Errorf("uploader: upload %s: %w", root, ctx.Err())
		}
	}

	var failed []*flight
	for _, f := range flights {
		switch {
		case f.err != nil:
			failed = append(failed, f)
		case f.owner == p:
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

// uploadError picks the error to report for a failed Upload: the root's when
// it failed (it names the chain of references down to the cause), else the
// first failure that is not merely a failed reference.
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
