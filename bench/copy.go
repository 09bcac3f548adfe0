package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// nixs3qCopy times `nixs3q copy --to` the bucket over S3, with the
// benchmark's signing key and no progress output, and returns the wall
// time, the peak RSS and the CPU time of the process.
func (e *env) nixs3qCopy(ctx context.Context, bucket string, paths ...string) (time.Duration, int64, time.Duration, error) {
	args := append([]string{"copy", "--to", e.s3URL(bucket), "--secret-key-file", e.keyFile, "--progress", "none"}, paths...)
	cmd := exec.CommandContext(ctx, e.bins.nixs3q, args...)
	cmd.Env = e.daemonEnv()
	return runMeasured(cmd, "nixs3q copy")
}

// copyRun is one run of a copy measure, for both tools.
type copyRun struct {
	copy, nixCopy         time.Duration
	copyRSS, nixCopyRSS   int64
	copyCPU, nixCopyCPU   time.Duration
	copyMinIO, nixCopyMin time.Duration
	verified              int
}

// runCopy uploads root's closure with `nixs3q copy` to a fresh bucket and
// with nix copy to another fresh bucket, alternating the order between
// runs, and reads both back.
func (e *env) runCopy(ctx context.Context, name string, r int, root string, closure []string) (copyRun, error) {
	var out copyRun
	doCopy := func() error {
		bucket, err := e.newBucket(ctx, name+"-copy")
		if err != nil {
			return err
		}
		m0 := e.minioCPU()
		if out.copy, out.copyRSS, out.copyCPU, err = e.nixs3qCopy(ctx, bucket, root); err != nil {
			return err
		}
		out.copyMinIO = e.minioCPU() - m0
		out.verified, err = e.verifyNarinfos(ctx, bucket, closure, true)
		return err
	}
	doNix := func() error {
		bucket, err := e.newBucket(ctx, name+"-nix")
		if err != nil {
			return err
		}
		m0 := e.minioCPU()
		if out.nixCopy, out.nixCopyRSS, out.nixCopyCPU, err = e.nixCopyCPU(ctx, bucket, filepath.Join(e.dir, fmt.Sprintf("%s-nix-%d", name, r)), root); err != nil {
			return err
		}
		out.nixCopyMin = e.minioCPU() - m0
		_, err = e.verifyNarinfos(ctx, bucket, closure, true)
		return err
	}
	first, second := doCopy, doNix
	if r%2 == 1 {
		first, second = doNix, doCopy
	}
	if err := first(); err != nil {
		return out, err
	}
	return out, second()
}

func (c copyRun) note() string {
	return fmt.Sprintf("CPU s: copy %.2f + MinIO %.2f, nix copy %.2f + MinIO %.2f",
		secs(c.copyCPU), secs(c.copyMinIO), secs(c.nixCopyCPU), secs(c.nixCopyMin))
}

// measureCopy runs the upload measures of the closure and big groups, and
// the cold dedup measure, with `nixs3q copy` (no daemon) in place of
// push → wait.
func (e *env) measureCopy(ctx context.Context) ([]Row, error) {
	cfg := e.opts.cfg
	var rows []Row

	root, err := e.closureInput(ctx, e.opts.size, cfg.closurePaths, cfg.closureRand, cfg.closureText)
	if err != nil {
		return nil, err
	}
	closure, err := e.closure(ctx, root)
	if err != nil {
		return nil, err
	}
	var cp, nc, cpuCopy, cpuNix []float64
	verified := 0
	for r := range e.opts.runs {
		cr, err := e.runCopy(ctx, "copy-closure", r, root, closure)
		if err != nil {
			return nil, err
		}
		e.logf("copy closure run %d: nixs3q copy %.2f s (peak RSS %.0f MiB), nix copy %.2f s; %s",
			r+1, secs(cr.copy), mib(cr.copyRSS), secs(cr.nixCopy), cr.note())
		cp, nc = append(cp, secs(cr.copy)), append(nc, secs(cr.nixCopy))
		cpuCopy, cpuNix = append(cpuCopy, secs(cr.copyCPU)), append(cpuNix, secs(cr.nixCopyCPU))
		verified += cr.verified
	}
	row := newRow("copy", "copy-closure", "s", cp, nc, "nix copy")
	row.Target = "≥ 1.5× faster than nix copy (ratio ≤ 0.67), as upload-closure"
	row.Met = row.Ratio > 0 && row.Ratio <= 1/1.5
	row.Verified = verified
	row.Note = fmt.Sprintf("the upload-closure input (%d paths) with `nixs3q copy`, no daemon; median CPU s: copy %.2f, nix copy %.2f",
		len(closure), median(cpuCopy), median(cpuNix))
	rows = append(rows, row)

	big, err := e.bigInput(ctx, e.opts.size, cfg.bigSize)
	if err != nil {
		return nil, err
	}
	var bc, bn, rss, nrss []float64
	verified = 0
	for r := range e.opts.runs {
		cr, err := e.runCopy(ctx, "copy-big", r, big, []string{big})
		if err != nil {
			return nil, err
		}
		e.logf("copy big run %d: nixs3q copy %.2f s, peak RSS %.0f MiB; nix copy %.2f s, peak RSS %.0f MiB; %s",
			r+1, secs(cr.copy), mib(cr.copyRSS), secs(cr.nixCopy), mib(cr.nixCopyRSS), cr.note())
		bc, bn = append(bc, secs(cr.copy)), append(bn, secs(cr.nixCopy))
		rss, nrss = append(rss, mib(cr.copyRSS)), append(nrss, mib(cr.nixCopyRSS))
		verified += cr.verified
	}
	t := newRow("copy", "copy-big", "s", bc, bn, "nix copy")
	t.Target = "faster than nix copy (ratio < 1), as upload-big"
	t.Met = t.Ratio > 0 && t.Ratio < 1
	t.Verified = verified
	t.Note = fmt.Sprintf("one path of %s random bytes, zstd, with `nixs3q copy`", humanSize(cfg.bigSize))
	m := newRow("copy", "copy-big-rss", "MiB", rss, nrss, "nix copy")
	m.Target = "peak RSS ≤ 150 MiB, as upload-big-rss"
	m.Met = m.Value > 0 && m.Value <= 150
	m.Note = "rusage maxrss of the copy process and of nix copy"
	rows = append(rows, t, m)

	dedupRoot, err := e.dedupInput(ctx, e.opts.size, cfg.dedupPaths)
	if err != nil {
		return nil, err
	}
	dedupClosure, err := e.closure(ctx, dedupRoot)
	if err != nil {
		return nil, err
	}
	bucket, err := e.newBucket(ctx, "copy-dedup")
	if err != nil {
		return nil, err
	}
	fill, _, _, err := e.nixs3qCopy(ctx, bucket, dedupRoot)
	if err != nil {
		return nil, err
	}
	e.logf("copy dedup: filled the bucket with %d paths by nixs3q copy in %.1f s", len(dedupClosure), fill.Seconds())
	if verified, err = e.verifyNarinfos(ctx, bucket, dedupClosure, true); err != nil {
		return nil, err
	}
	var dc, dn []float64
	for r := range e.opts.runs {
		c, _, _, err := e.nixs3qCopy(ctx, bucket, dedupRoot)
		if err != nil {
			return nil, err
		}
		n, _, err := e.nixCopy(ctx, bucket, filepath.Join(e.dir, fmt.Sprintf("copy-dedup-nix-%d", r)), dedupRoot)
		if err != nil {
			return nil, err
		}
		e.logf("copy dedup run %d: nixs3q copy %.3f s; nix copy (cold) %.3f s", r+1, secs(c), secs(n))
		dc, dn = append(dc, secs(c)), append(dn, secs(n))
	}
	d := newRow("copy", "copy-dedup", "s", dc, dn, "nix copy (cold)")
	d.Target = "≤ 3 s, as dedup-cold"
	d.Met = d.Value <= 3
	d.Verified = verified
	d.Note = fmt.Sprintf("%d paths already in the bucket: every narinfo looked up; bucket filled by nixs3q copy in %.1f s", len(dedupClosure), fill.Seconds())
	return append(rows, d), nil
}
