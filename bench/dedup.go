package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// measureDedup pushes a root whose closure is already in the bucket: once
// with a fresh daemon (cold presence cache: every narinfo is looked up) and
// once more with the same daemon (warm). nix copy of the same root is the
// baseline, cold (empty narinfo disk cache) and warm (the same cache again).
func (e *env) measureDedup(ctx context.Context) ([]Row, error) {
	cfg := e.opts.cfg
	root, err := e.dedupInput(ctx, e.opts.size, cfg.dedupPaths)
	if err != nil {
		return nil, err
	}
	closure, err := e.closure(ctx, root)
	if err != nil {
		return nil, err
	}
	if len(closure) != cfg.dedupPaths+1 {
		return nil, fmt.Errorf("bench: dedup closure has %d paths, want %d", len(closure), cfg.dedupPaths+1)
	}
	bucket, err := e.newBucket(ctx, "dedup")
	if err != nil {
		return nil, err
	}
	fill, err := e.startDaemon(ctx, filepath.Join(e.dir, "dedup-fill"), daemonOpts{store: e.s3URL(bucket)})
	if err != nil {
		return nil, err
	}
	took, err := e.pushAndWait(ctx, fill, root)
	if err != nil {
		fill.stop()
		return nil, err
	}
	if err := fill.stop(); err != nil {
		return nil, err
	}
	e.logf("dedup: filled the bucket with %d paths by nixs3q in %.1f s", len(closure), took.Seconds())
	verified, err := e.verifyNarinfos(ctx, bucket, closure, true)
	if err != nil {
		return nil, err
	}

	var cold, warm, nixCold, nixWarm, pathInfo, coldCPU, coldMinIO []float64
	for r := range e.opts.runs {
		d, err := e.startDaemon(ctx, filepath.Join(e.dir, fmt.Sprintf("dedup-%d", r)), daemonOpts{store: e.s3URL(bucket)})
		if err != nil {
			return nil, err
		}
		cpu0, m0 := d.cpu(), e.minioCPU()
		c, err := e.dedupPush(ctx, d, root, 0, len(closure))
		if err != nil {
			d.stop()
			return nil, err
		}
		coldCPU, coldMinIO = append(coldCPU, secs(d.cpu()-cpu0)), append(coldMinIO, secs(e.minioCPU()-m0))
		// Warm: the root's own fresh presence entry stands for its
		// closure, so the daemon skips it as one path.
		w, err := e.dedupPush(ctx, d, root, len(closure), len(closure)+1)
		if err != nil {
			d.stop()
			return nil, err
		}
		if err := d.stop(); err != nil {
			return nil, err
		}
		// The metadata query every push of root makes, alone.
		start := time.Now()
		if _, err := e.nixCmd(ctx, nil, "nix", "path-info", "--json", "--recursive", root); err != nil {
			return nil, err
		}
		pathInfo = append(pathInfo, secs(time.Since(start)))
		nixHome := filepath.Join(e.dir, fmt.Sprintf("dedup-nix-%d", r))
		nc, _, err := e.nixCopy(ctx, bucket, nixHome, root)
		if err != nil {
			return nil, err
		}
		nw, _, err := e.nixCopy(ctx, bucket, nixHome, root)
		if err != nil {
			return nil, err
		}
		e.logf("dedup run %d: nixs3q cold %.3f s, warm %.3f s; nix copy cold %.3f s, warm %.3f s",
			r+1, secs(c), secs(w), secs(nc), secs(nw))
		cold, warm = append(cold, secs(c)), append(warm, secs(w))
		nixCold, nixWarm = append(nixCold, secs(nc)), append(nixWarm, secs(nw))
	}
	cr := newRow("dedup", "dedup-cold", "s", cold, nixCold, "nix copy")
	cr.Target = "≤ 3 s"
	cr.Met = cr.Value <= 3
	cr.Verified = verified
	cr.Note = fmt.Sprintf("%d paths already in the bucket, fresh daemon: every narinfo looked up (HEAD); CPU s of the daemon %.2f, of MinIO %.2f; "+
		"bucket filled by nixs3q in %.1f s", len(closure), median(coldCPU), median(coldMinIO), took.Seconds())
	wr := newRow("dedup", "dedup-warm", "s", warm, nixWarm, "nix copy")
	wr.Target = "≤ 0.3 s"
	wr.Met = wr.Value <= 0.3
	wr.Note = fmt.Sprintf("the same push again: the root is fresh in the presence cache, so no metadata query and no request; nix copy with its narinfo disk cache warm; "+
		"`nix path-info --json --recursive` of the closure alone: %.3f s", median(pathInfo))
	return []Row{cr, wr}, nil
}

// dedupPush times one push of root, which must find everything present:
// the daemon's counters must show no upload, and skipped going from before
// to after.
func (e *env) dedupPush(ctx context.Context, d *daemon, root string, before, after int) (time.Duration, error) {
	took, err := e.pushAndWait(ctx, d, root)
	if err != nil {
		return 0, err
	}
	st, err := d.status(ctx)
	if err != nil {
		return 0, err
	}
	if st.Uploaded != 0 || st.Skipped != int64(after) {
		return 0, fmt.Errorf("bench: dedup push uploaded %d and skipped %d paths in all, want 0 and %d (from %d)", st.Uploaded, st.Skipped, after, before)
	}
	return took, nil
}
