package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// nixCopy times `nix copy --to` the bucket over plain HTTP (Debian's Nix 2.8
// is built without S3 support; it uploads to an HTTP binary cache with PUT)
// with zstd and the benchmark's signing key, like nixs3q's narinfos. Its
// narinfo disk cache lives in cacheHome. It returns the wall time and the
// peak RSS of the nix process.
func (e *env) nixCopy(ctx context.Context, bucket, cacheHome string, paths ...string) (time.Duration, int64, error) {
	took, rss, _, err := e.nixCopyCPU(ctx, bucket, cacheHome, paths...)
	return took, rss, err
}

// nixCopyCPU is nixCopy that also returns the CPU time nix used.
func (e *env) nixCopyCPU(ctx context.Context, bucket, cacheHome string, paths ...string) (time.Duration, int64, time.Duration, error) {
	if err := os.MkdirAll(cacheHome, 0o700); err != nil {
		return 0, 0, 0, err
	}
	to := e.copyURL(bucket) + "?compression=zstd&secret-key=" + e.keyFile
	cmd := exec.CommandContext(ctx, "nix", append([]string{"copy", "--to", to}, paths...)...)
	cmd.Env = append(slices.Clone(e.nixEnv), "XDG_CACHE_HOME="+cacheHome)
	return runMeasured(cmd, "nix copy")
}

// runMeasured runs cmd and returns its wall time, its peak RSS (bytes) and
// its CPU time; a failure carries what cmd printed on stderr.
func runMeasured(cmd *exec.Cmd, what string) (time.Duration, int64, time.Duration, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bench: %s: %w: %s", what, err, stderr.String())
	}
	var rss int64
	var cpu time.Duration
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10 // kilobytes on Linux
		cpu = rusageCPU(ru)
	}
	return took, rss, cpu, nil
}

// uploadRun is one run of an upload measure, for both tools.
type uploadRun struct {
	nixs3q, nixCopy time.Duration
	nixs3qRSS       int64 // daemon's VmHWM, bytes
	nixCopyRSS      int64
	// CPU time of the uploader (daemon or nix) and of MinIO during it.
	nixs3qCPU, nixs3qMinIOCPU   time.Duration
	nixCopyCPU, nixCopyMinIOCPU time.Duration
	verified                    int
	bucket                      string // nixs3q's
}

// runUpload uploads root's closure with a fresh nixs3q daemon to a fresh
// bucket, and with nix copy to another fresh bucket; the order of the two
// alternates between runs. Both uploads are read back and checked.
func (e *env) runUpload(ctx context.Context, name string, r int, root string, closure []string) (uploadRun, error) {
	var out uploadRun
	doNixs3q := func() error {
		bucket, err := e.newBucket(ctx, name+"-nixs3q")
		if err != nil {
			return err
		}
		out.bucket = bucket
		d, err := e.startDaemon(ctx, filepath.Join(e.dir, fmt.Sprintf("%s-%d", name, r)), daemonOpts{store: e.s3URL(bucket)})
		if err != nil {
			return err
		}
		defer d.stop()
		m0 := e.minioCPU()
		if out.nixs3q, err = e.pushAndWait(ctx, d, root); err != nil {
			return err
		}
		out.nixs3qMinIOCPU = e.minioCPU() - m0
		if out.nixs3qRSS, err = d.peakRSS(); err != nil {
			return err
		}
		if err := d.stop(); err != nil {
			return err
		}
		out.nixs3qCPU = rusageCPU(d.rusage)
		n, err := e.verifyNarinfos(ctx, bucket, closure, true)
		out.verified = n
		return err
	}
	doNix := func() error {
		bucket, err := e.newBucket(ctx, name+"-nix")
		if err != nil {
			return err
		}
		m0 := e.minioCPU()
		took, rss, cpu, err := e.nixCopyCPU(ctx, bucket, filepath.Join(e.dir, fmt.Sprintf("%s-nix-%d", name, r)), root)
		if err != nil {
			return err
		}
		out.nixCopyMinIOCPU = e.minioCPU() - m0
		out.nixCopy, out.nixCopyRSS, out.nixCopyCPU = took, rss, cpu
		_, err = e.verifyNarinfos(ctx, bucket, closure, true)
		return err
	}
	first, second := doNixs3q, doNix
	if r%2 == 1 {
		first, second = doNix, doNixs3q
	}
	if err := first(); err != nil {
		return out, err
	}
	if err := second(); err != nil {
		return out, err
	}
	return out, nil
}

func (u uploadRun) cpuNote() string {
	return fmt.Sprintf("CPU s: daemon %.2f + MinIO %.2f, nix copy %.2f + MinIO %.2f",
		secs(u.nixs3qCPU), secs(u.nixs3qMinIOCPU), secs(u.nixCopyCPU), secs(u.nixCopyMinIOCPU))
}

// medianCPU summarises the CPU times of runs, each the median.
func medianCPU(runs []uploadRun) string {
	pick := func(f func(uploadRun) time.Duration) float64 {
		var xs []float64
		for _, u := range runs {
			xs = append(xs, secs(f(u)))
		}
		return median(xs)
	}
	return fmt.Sprintf("CPU s: nixs3q daemon %.2f + MinIO %.2f, nix copy %.2f + MinIO %.2f",
		pick(func(u uploadRun) time.Duration { return u.nixs3qCPU }), pick(func(u uploadRun) time.Duration { return u.nixs3qMinIOCPU }),
		pick(func(u uploadRun) time.Duration { return u.nixCopyCPU }), pick(func(u uploadRun) time.Duration { return u.nixCopyMinIOCPU }))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// measureClosure uploads a closure of many medium paths, and compares the
// upload's wall time with compressing the same NARs alone.
func (e *env) measureClosure(ctx context.Context) ([]Row, error) {
	cfg := e.opts.cfg
	root, err := e.closureInput(ctx, e.opts.size, cfg.closurePaths, cfg.closureRand, cfg.closureText)
	if err != nil {
		return nil, err
	}
	closure, err := e.closure(ctx, root)
	if err != nil {
		return nil, err
	}
	nars, err := dumpNARs(closure)
	if err != nil {
		return nil, err
	}
	var up, cp, comp, rss []float64
	var cpu []uploadRun
	verified := 0
	var narBytes int64
	for _, n := range nars {
		narBytes += int64(len(n))
	}
	for r := range e.opts.runs {
		ur, err := e.runUpload(ctx, "closure", r, root, closure)
		if err != nil {
			return nil, err
		}
		c, err := compressAlone(nars, compressStreams)
		if err != nil {
			return nil, err
		}
		e.logf("closure run %d: nixs3q %.2f s (peak RSS %.0f MiB), nix copy %.2f s, zstd alone %.2f s; %s",
			r+1, secs(ur.nixs3q), mib(ur.nixs3qRSS), secs(ur.nixCopy), secs(c), ur.cpuNote())
		cpu = append(cpu, ur)
		up, cp, comp = append(up, secs(ur.nixs3q)), append(cp, secs(ur.nixCopy)), append(comp, secs(c))
		rss = append(rss, mib(ur.nixs3qRSS))
		verified += ur.verified
	}
	row := newRow("closure", "upload-closure", "s", up, cp, "nix copy")
	row.Target = "≥ 1.5× faster than nix copy (ratio ≤ 0.67)"
	row.Met = row.Ratio > 0 && row.Ratio <= 1/1.5
	row.Verified = verified
	row.Note = fmt.Sprintf("%d paths × (%s random + %s text), %.0f MiB of NAR, zstd; nixs3q push → wait; speed-up %.2f×; median %s; daemon peak RSS %.0f MiB",
		cfg.closurePaths, humanSize(cfg.closureRand), humanSize(cfg.closureText), mib(narBytes), 1/row.Ratio, medianCPU(cpu), median(rss))

	cost := newRow("closure", "compression-cost", "s", up, comp, "zstd alone")
	cost.Target = "upload ≤ 1.3× bare compression"
	cost.Met = cost.Ratio > 0 && cost.Ratio <= 1.3
	cost.Note = fmt.Sprintf("baseline: the same NARs from memory through zstd level 3 (the daemon's encoder settings), %d streams at once as the daemon's 4 workers", compressStreams)
	return []Row{row, cost}, nil
}

// measureBig uploads one large incompressible path.
func (e *env) measureBig(ctx context.Context) ([]Row, error) {
	cfg := e.opts.cfg
	path, err := e.bigInput(ctx, e.opts.size, cfg.bigSize)
	if err != nil {
		return nil, err
	}
	var up, cp, rss, cprss []float64
	var cpu []uploadRun
	verified := 0
	for r := range e.opts.runs {
		ur, err := e.runUpload(ctx, "big", r, path, []string{path})
		if err != nil {
			return nil, err
		}
		e.logf("big run %d: nixs3q %.2f s, peak RSS %.0f MiB; nix copy %.2f s, peak RSS %.0f MiB; %s",
			r+1, secs(ur.nixs3q), mib(ur.nixs3qRSS), secs(ur.nixCopy), mib(ur.nixCopyRSS), ur.cpuNote())
		cpu = append(cpu, ur)
		up, cp = append(up, secs(ur.nixs3q)), append(cp, secs(ur.nixCopy))
		rss, cprss = append(rss, mib(ur.nixs3qRSS)), append(cprss, mib(ur.nixCopyRSS))
		verified += ur.verified
	}
	t := newRow("big", "upload-big", "s", up, cp, "nix copy")
	t.Target = "faster than nix copy (ratio < 1)"
	t.Met = t.Ratio > 0 && t.Ratio < 1
	t.Verified = verified
	t.Note = fmt.Sprintf("one path of %s random bytes, zstd; nixs3q push → wait; median %s", humanSize(cfg.bigSize), medianCPU(cpu))
	m := newRow("big", "upload-big-rss", "MiB", rss, cprss, "nix copy")
	m.Target = "daemon peak RSS ≤ 150 MiB"
	m.Met = m.Value > 0 && m.Value <= 150
	m.Note = "daemon VmHWM just before it stops (whole process, all workers); nix copy: its rusage maxrss"
	return []Row{t, m}, nil
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
