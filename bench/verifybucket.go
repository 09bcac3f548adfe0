package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan/scantest"
	"github.com/nixs3q/nixs3q/uploader"
)

// measureVerify fills a bucket with verifyPaths synthetic store paths
// (valid NARs of about 2 KiB, zstd, narinfos signed by the benchmark's key,
// each referring to up to three earlier paths) and times `nixs3q verify`
// on it, without and with --check-nar-hashes, against `nix store verify
// --store http://...` of every path, without (--no-contents: signatures
// only) and with contents.
func (e *env) measureVerify(ctx context.Context) ([]Row, error) {
	n := e.opts.cfg.verifyPaths
	bucket, err := e.newBucket(ctx, "verify")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	paths, err := e.fillSynthetic(ctx, bucket, n)
	if err != nil {
		return nil, err
	}
	e.logf("verify: filled the bucket with %d synthetic paths in %.1f s", n, time.Since(start).Seconds())

	var tv, rv, th, nv, nrss, nh []float64
	verified := 0
	for r := range e.opts.runs {
		took, rss, got, err := e.nixs3qVerify(ctx, bucket, false)
		if err != nil {
			return nil, err
		}
		if got != n {
			return nil, fmt.Errorf("bench: nixs3q verify read %d narinfos, want %d", got, n)
		}
		verified += got
		tv, rv = append(tv, secs(took)), append(rv, mib(rss))
		took, _, _, err = e.nixs3qVerify(ctx, bucket, true)
		if err != nil {
			return nil, err
		}
		th = append(th, secs(took))

		home := filepath.Join(e.dir, fmt.Sprintf("verify-nix-%d", r))
		took, rss, err = e.nixStoreVerify(ctx, bucket, home, paths, false)
		if err != nil {
			return nil, err
		}
		nv, nrss = append(nv, secs(took)), append(nrss, mib(rss))
		took, _, err = e.nixStoreVerify(ctx, bucket, home+"-contents", paths, true)
		if err != nil {
			return nil, err
		}
		nh = append(nh, secs(took))
	}
	rowTime := newRow("verify", "verify", "s", tv, nv, "nix store verify --no-contents")
	rowTime.Target = "≤ 10 s for 10,000 narinfos"
	rowTime.Met = n >= 10000 && rowTime.Value <= 10
	rowTime.Verified = verified
	rowTime.Note = fmt.Sprintf("%d narinfos; nixs3q verify also lists the bucket and checks NAR objects, orphans and unfinished uploads", n)
	rowRSS := newRow("verify", "verify-rss", "MiB", rv, nrss, "nix store verify --no-contents")
	rowRSS.Target = "≤ 100 MiB"
	rowRSS.Met = rowRSS.Value <= 100
	rowHash := newRow("verify", "verify-nar-hashes", "s", th, nh, "nix store verify")
	rowHash.Target = "faster than nix store verify"
	rowHash.Met = rowHash.Ratio > 0 && rowHash.Ratio < 1
	return []Row{rowTime, rowRSS, rowHash}, nil
}

// putCache is the one uploader.Cache method scantest.Writer needs, on the
// benchmark's MinIO client.
type putCache struct {
	uploader.Cache // nil: only Put is used
	client         *awss3.Client
	bucket         string
}

func (c putCache) Put(ctx context.Context, key string, body io.Reader, opt uploader.PutOptions) error {
	data, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	_, err = c.client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	return err
}

// fillSynthetic publishes n synthetic paths into bucket, references first,
// 32 at once, and returns their store paths.
func (e *env) fillSynthetic(ctx context.Context, bucket string, n int) ([]string, error) {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	ps := make([]*scantest.Path, n)
	for i := range n {
		var refs []*scantest.Path
		for range rng.IntN(4) {
			if i > 0 {
				if r := ps[rng.IntN(i)]; !slices.Contains(refs, r) {
					refs = append(refs, r)
				}
			}
		}
		contents := make([]byte, 2048)
		for j := range contents {
			contents[j] = "abcdefghijklmnopqrstuvwxyz \n"[rng.IntN(28)]
		}
		ps[i] = scantest.NewPath(nix.DefaultStoreDir, fmt.Sprintf("bench-verify-%d", i), contents, refs...)
	}
	w := &scantest.Writer{Cache: putCache{client: e.minio.Client(), bucket: bucket}, Key: e.key, Compression: "zstd"}
	if err := w.PutCacheInfo(ctx); err != nil {
		return nil, err
	}
	// Publish in waves: every path after all of its references.
	done := make([]bool, n)
	for left := n; left > 0; {
		var wave []int
		for i, p := range ps {
			if done[i] {
				continue
			}
			ready := true
			for _, r := range p.Refs {
				if !done[slices.Index(ps, r)] {
					ready = false
				}
			}
			if ready {
				wave = append(wave, i)
			}
		}
		errs := make([]error, len(wave))
		next := make(chan int)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for k := range next {
					_, errs[k] = w.Publish(ctx, ps[wave[k]])
				}
			})
		}
		for k := range wave {
			next <- k
		}
		close(next)
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("bench: publish synthetic path: %w", err)
			}
			done[wave[k]] = true
		}
		left -= len(wave)
	}
	out := make([]string, n)
	for i, p := range ps {
		out[i] = p.StorePath
	}
	return out, nil
}

// nixs3qVerify runs `nixs3q verify --json` on bucket and returns its wall
// time, peak RSS and the number of narinfos it read; any problem is an
// error.
func (e *env) nixs3qVerify(ctx context.Context, bucket string, hashes bool) (time.Duration, int64, int, error) {
	args := []string{"verify", "--store", e.s3URL(bucket), "--trusted-public-key", e.key.Public().String(), "--json"}
	if hashes {
		args = append(args, "--check-nar-hashes")
	}
	cmd := exec.CommandContext(ctx, e.bins.nixs3q, args...)
	cmd.Env = e.daemonEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	rss, err := runPeakRSS(cmd)
	took := time.Since(start)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bench: nixs3q verify: %w: %s%s", err, stdout.String(), stderr.String())
	}
	var rep struct {
		NarInfos int   `json:"narinfos"`
		Problems []any `json:"problems"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || len(rep.Problems) != 0 {
		return 0, 0, 0, fmt.Errorf("bench: nixs3q verify report (%v): %s", err, stdout.String())
	}
	return took, rss, rep.NarInfos, nil
}

// nixStoreVerify runs `nix store verify --store http://...` on paths,
// trusting the benchmark's key, with its narinfo disk cache in cacheHome;
// contents also downloads and hashes every NAR.
func (e *env) nixStoreVerify(ctx context.Context, bucket, cacheHome string, paths []string, contents bool) (time.Duration, int64, error) {
	if err := os.MkdirAll(cacheHome, 0o700); err != nil {
		return 0, 0, err
	}
	args := []string{"store", "verify", "--store", e.httpURL(bucket), "--option", "trusted-public-keys", e.key.Public().String()}
	if !contents {
		args = append(args, "--no-contents")
	}
	cmd := exec.CommandContext(ctx, "nix", append(args, paths...)...)
	cmd.Env = append(slices.Clone(e.nixEnv), "XDG_CACHE_HOME="+cacheHome)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	rss, err := runPeakRSS(cmd)
	took := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: nix store verify: %w: %s", err, lastLines(stderr.String(), 5))
	}
	return took, rss, nil
}

// runPeakRSS runs cmd and returns its peak RSS, the last VmHWM read from
// /proc every 10 ms while it ran. (ru_maxrss from wait4 cannot be used for
// a child of a Go program: the child starts with vfork, sharing this
// process's memory, and the kernel carries that high-water mark over the
// exec.)
func runPeakRSS(cmd *exec.Cmd) (int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan struct{})
	var peak int64
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := vmHWM(cmd.Process.Pid); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-exited:
				return
			case <-t.C:
			}
		}
	}()
	err := cmd.Wait()
	close(exited)
	<-polled
	return peak, err
}

func lastLines(s string, n int) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(s)), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
