package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nixs3q/nixs3q/internal/wanproxy"
)

// The WAN group measures uploads and dedup over a simulated wide-area
// network: wanproxy in front of the same MinIO adds a fixed latency to every
// request and caps the bandwidth of both directions together. nixs3q and
// nix copy both go through it, in the same run.

// wanTiers are the two simulated networks, by row-name prefix.
var wanTiers = []string{"near", "far"}

// wanRowNames lists the rows of the WAN group, in order.
func wanRowNames() []string {
	var names []string
	for _, t := range wanTiers {
		for _, r := range []string{"small", "closure", "dedup-small", "dedup-cold", "dedup-warm"} {
			names = append(names, "wan-"+t+"-"+r)
		}
		if t == wanTiers[0] {
			names = append(names, "wan-"+t+"-dedup-heads")
		}
	}
	return append(names, "wan-throttle")
}

// wanProxy starts a proxy in front of MinIO with the tier's latency and the
// size's bandwidth, and throttle (a fraction of requests answered 503
// SlowDown), and routes e's nixs3q and nix copy uploads through it until
// the returned function is called.
func (e *env) wanProxy(latency time.Duration, throttle float64) (func(), error) {
	p, err := wanproxy.New(wanproxy.Config{
		Upstream:  e.minio.Endpoint,
		Latency:   latency,
		Bandwidth: e.opts.cfg.wanBandwidth,
		Throttle:  throttle,
		Seed:      1,
	})
	if err != nil {
		return nil, err
	}
	s, err := wanproxy.Start(p)
	if err != nil {
		return nil, err
	}
	e.via = s
	return func() { e.via = nil; s.Close() }, nil
}

// measureWAN runs every row of the WAN group.
func (e *env) measureWAN(ctx context.Context) ([]Row, error) {
	cfg := e.opts.cfg
	smallRoot, err := e.dedupInput(ctx, "wan", cfg.wanSmallPaths)
	if err != nil {
		return nil, err
	}
	smallClosure, err := e.closure(ctx, smallRoot)
	if err != nil {
		return nil, err
	}
	closureRoot, err := e.closureInput(ctx, e.opts.size, cfg.closurePaths, cfg.closureRand, cfg.closureText)
	if err != nil {
		return nil, err
	}
	closureAll, err := e.closure(ctx, closureRoot)
	if err != nil {
		return nil, err
	}
	bigRoot, err := e.dedupInput(ctx, e.opts.size, cfg.dedupPaths)
	if err != nil {
		return nil, err
	}
	bigClosure, err := e.closure(ctx, bigRoot)
	if err != nil {
		return nil, err
	}
	// The large dedup bucket is filled once, directly (not through the
	// proxy), by nixs3q.
	bigBucket, err := e.newBucket(ctx, "wan-dedup")
	if err != nil {
		return nil, err
	}
	fill, err := e.startDaemon(ctx, e.daemonDir("fill"), daemonOpts{store: e.s3URL(bigBucket)})
	if err != nil {
		return nil, err
	}
	if _, err := e.pushAndWait(ctx, fill, bigRoot); err != nil {
		fill.stop()
		return nil, err
	}
	if err := fill.stop(); err != nil {
		return nil, err
	}

	var rows []Row
	for i, tier := range wanTiers {
		latency := cfg.wanLatencies[i]
		stop, err := e.wanProxy(latency, 0)
		if err != nil {
			return nil, err
		}
		tr, err := e.measureWANTier(ctx, tier, latency, smallRoot, smallClosure, closureRoot, closureAll, bigRoot, bigClosure, bigBucket)
		stop()
		if err != nil {
			return nil, err
		}
		rows = append(rows, tr...)
	}
	tr, err := e.measureThrottle(ctx, smallRoot, smallClosure)
	if err != nil {
		return nil, err
	}
	return append(rows, tr), nil
}

func (e *env) wanNote(latency time.Duration) string {
	return fmt.Sprintf("through wanproxy: %v per request, %d Mbit/s shared by both directions", latency, e.opts.cfg.wanBandwidth/1_000_000)
}

// measureWANTier measures the rows of one tier through the proxy in e.via.
func (e *env) measureWANTier(ctx context.Context, tier string, latency time.Duration,
	smallRoot string, smallClosure []string, closureRoot string, closureAll []string,
	bigRoot string, bigClosure []string, bigBucket string) ([]Row, error) {
	cfg := e.opts.cfg
	name := func(r string) string { return "wan-" + tier + "-" + r }
	note := e.wanNote(latency)

	var rows []Row
	var smallBucket string
	for _, m := range []struct {
		row, root string
		closure   []string
		target    float64
		what      string
	}{
		{"small", smallRoot, smallClosure, 10, fmt.Sprintf("%d small paths and a root referring to them", cfg.wanSmallPaths)},
		{"closure", closureRoot, closureAll, 3, fmt.Sprintf("%d paths × (%s random + %s text), zstd", cfg.closurePaths, humanSize(cfg.closureRand), humanSize(cfg.closureText))},
	} {
		var up, cp []float64
		verified := 0
		for r := range e.opts.runs {
			ur, err := e.runUpload(ctx, name(m.row), r, m.root, m.closure)
			if err != nil {
				return nil, err
			}
			e.logf("%s run %d: nixs3q %.2f s, nix copy %.2f s", name(m.row), r+1, secs(ur.nixs3q), secs(ur.nixCopy))
			up, cp = append(up, secs(ur.nixs3q)), append(cp, secs(ur.nixCopy))
			verified += ur.verified
			if m.row == "small" {
				smallBucket = ur.bucket
			}
		}
		row := newRow("wan", name(m.row), "s", up, cp, "nix copy")
		row.Target = fmt.Sprintf("≥ %.0f× faster than nix copy (ratio ≤ %.2f)", m.target, 1/m.target)
		row.Met = row.Ratio > 0 && row.Ratio <= 1/m.target
		row.Verified = verified
		row.Note = fmt.Sprintf("%s; %s; nixs3q push → wait; speed-up %.1f×", m.what, note, 1/row.Ratio)
		rows = append(rows, row)
	}

	// Cold dedup of the small closure, in the bucket nixs3q last filled.
	var cold, nixCold []float64
	for r := range e.opts.runs {
		c, _, nc, _, err := e.wanDedup(ctx, name("dedup-small"), r, smallBucket, smallRoot, len(smallClosure), false)
		if err != nil {
			return nil, err
		}
		cold, nixCold = append(cold, c), append(nixCold, nc)
	}
	row := newRow("wan", name("dedup-small"), "s", cold, nixCold, "nix copy (cold)")
	row.Target = "≥ 5× faster than nix copy (ratio ≤ 0.20)"
	row.Met = row.Ratio > 0 && row.Ratio <= 0.2
	row.Note = fmt.Sprintf("the %d paths of wan-%s-small already in the bucket; fresh daemon, fresh nix narinfo cache; %s; speed-up %.1f×", len(smallClosure), tier, note, 1/row.Ratio)
	rows = append(rows, row)

	var warm, nixWarm []float64
	cold, nixCold = nil, nil
	for r := range e.opts.runs {
		c, w, nc, nw, err := e.wanDedup(ctx, name("dedup"), r, bigBucket, bigRoot, len(bigClosure), true)
		if err != nil {
			return nil, err
		}
		cold, nixCold = append(cold, c), append(nixCold, nc)
		warm, nixWarm = append(warm, w), append(nixWarm, nw)
	}
	cr := newRow("wan", name("dedup-cold"), "s", cold, nixCold, "nix copy (cold)")
	cr.Target = "≤ 3 s"
	cr.Met = cr.Value <= 3
	cr.Note = fmt.Sprintf("%d paths already in the bucket, fresh daemon, fresh nix narinfo cache; %s; speed-up %.1f×", len(bigClosure), note, 1/cr.Ratio)
	wr := newRow("wan", name("dedup-warm"), "s", warm, nixWarm, "nix copy (warm)")
	wr.Target = "≤ 0.3 s"
	wr.Met = wr.Value <= 0.3
	wr.Note = fmt.Sprintf("the same push again, same daemon; nix copy with its narinfo cache warm; %s", note)
	rows = append(rows, cr, wr)
	if tier != wanTiers[0] {
		return rows, nil
	}
	// The same cold check with one HEAD per path (listing off), against
	// the listing measured just before.
	var heads []float64
	for r := range e.opts.runs {
		d, err := e.startDaemon(ctx, e.daemonDir("heads"),
			daemonOpts{store: e.s3URL(bigBucket), extra: []string{"--list-ratio", "-1"}})
		if err != nil {
			return nil, err
		}
		c, err := e.dedupPush(ctx, d, bigRoot, 0, len(bigClosure))
		if stopErr := d.stop(); err == nil {
			err = stopErr
		}
		if err != nil {
			return nil, err
		}
		e.logf("%s run %d: %.3f s", name("dedup-heads"), r+1, secs(c))
		heads = append(heads, secs(c))
	}
	hr := newRow("wan", name("dedup-heads"), "s", heads, cold, "listing")
	hr.Target = "(comparison: listing beats per-path lookups when ratio > 1)"
	hr.Met = hr.Ratio >= 1
	hr.Note = fmt.Sprintf("wan-%s-dedup-cold again with --list-ratio -1: one HeadObject per path (%d), against the 32 listings of the same bucket; %s", tier, len(bigClosure), note)
	return append(rows, hr), nil
}

// wanDedup times a cold push of root (fresh daemon) to bucket, where its
// closure of n paths already is, and with warm also the same push again;
// then nix copy cold (fresh narinfo cache) and, with warm, again.
func (e *env) wanDedup(ctx context.Context, name string, r int, bucket, root string, n int, warm bool, extra ...string) (cold, warmT, nixCold, nixWarm float64, err error) {
	d, err := e.startDaemon(ctx, e.daemonDir("dedup"), daemonOpts{store: e.s3URL(bucket), extra: extra})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	c, err := e.dedupPush(ctx, d, root, 0, n)
	if err == nil && warm {
		var w time.Duration
		w, err = e.dedupPush(ctx, d, root, n, n+1)
		warmT = secs(w)
	}
	if stopErr := d.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return 0, 0, 0, 0, err
	}
	home := filepath.Join(e.dir, fmt.Sprintf("%s-nix-%d", name, r))
	nc, _, err := e.nixCopy(ctx, bucket, home, root)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	if warm {
		nw, _, err := e.nixCopy(ctx, bucket, home, root)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		nixWarm = secs(nw)
	}
	e.logf("%s run %d: nixs3q cold %.3f s, warm %.3f s; nix copy cold %.3f s, warm %.3f s", name, r+1, secs(c), warmT, secs(nc), nixWarm)
	return secs(c), warmT, secs(nc), nixWarm, nil
}

// measureThrottle uploads the small closure through the near tier's
// network with a fraction of requests answered 503 SlowDown, and records
// the daemon's adaptive write limit over time from its metrics.
func (e *env) measureThrottle(ctx context.Context, root string, closure []string) (Row, error) {
	cfg := e.opts.cfg
	stop, err := e.wanProxy(cfg.wanLatencies[0], cfg.wanThrottle)
	if err != nil {
		return Row{}, err
	}
	defer stop()
	proxy := e.via
	var took []float64
	verified := 0
	var series []string
	for r := range e.opts.runs {
		bucket, err := e.newBucket(ctx, "wan-throttle")
		if err != nil {
			return Row{}, err
		}
		addr, err := freeAddr()
		if err != nil {
			return Row{}, err
		}
		d, err := e.startDaemon(ctx, e.daemonDir("throttle"),
			daemonOpts{store: e.s3URL(bucket), extra: []string{"--metrics-listen", addr}})
		if err != nil {
			return Row{}, err
		}
		before := proxy.Stats()
		sctx, stopSampling := context.WithCancel(ctx)
		var samples []limitSample
		var wg sync.WaitGroup
		wg.Go(func() { samples = e.sampleLimits(sctx, "http://"+addr+"/metrics", 100*time.Millisecond) })
		t, err := e.pushAndWait(ctx, d, root)
		stopSampling()
		wg.Wait()
		if err == nil {
			var st, _ = d.status(ctx)
			if st != nil && (st.Failed != 0 || st.Uploaded != int64(len(closure))) {
				err = fmt.Errorf("bench: throttled upload: %d failed, %d uploaded, want 0 and %d", st.Failed, st.Uploaded, len(closure))
			}
		}
		if stopErr := d.stop(); err == nil {
			err = stopErr
		}
		if err != nil {
			return Row{}, err
		}
		n, err := e.verifyNarinfos(ctx, bucket, closure, true)
		if err != nil {
			return Row{}, err
		}
		verified += n
		after := proxy.Stats()
		e.logf("wan-throttle run %d: %.2f s; %d of %d requests throttled; write limit every 0.1 s: %s",
			r+1, secs(t), after.Throttled-before.Throttled, after.Requests-before.Requests, fmtSamples(samples))
		took = append(took, secs(t))
		series = append(series, fmt.Sprintf("run %d (%d of %d requests throttled): %s", r+1,
			after.Throttled-before.Throttled, after.Requests-before.Requests, fmtSamples(samples)))
	}
	row := newRow("wan", "wan-throttle", "s", took, nil, "")
	row.Target = "nothing fails; the limit settles"
	row.Met = verified == len(closure)*e.opts.runs
	row.Verified = verified
	row.Note = fmt.Sprintf("the %d paths of wan-near-small, %.0f%% of requests answered 503 SlowDown (Retry-After 1 s); %s; daemon's adaptive write limit (read limit) sampled every 0.1 s: %s",
		len(closure), cfg.wanThrottle*100, e.wanNote(cfg.wanLatencies[0]), strings.Join(series, "; "))
	return row, nil
}

// limitSample is one reading of the daemon's request limits.
type limitSample struct{ read, write int }

// sampleLimits scrapes url every interval until ctx ends.
func (e *env) sampleLimits(ctx context.Context, url string, interval time.Duration) []limitSample {
	var out []limitSample
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if s, ok := e.scrapeLimits(ctx, url); ok {
			out = append(out, s)
		}
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
	}
}

func (e *env) scrapeLimits(ctx context.Context, url string) (limitSample, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return limitSample{}, false
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return limitSample{}, false
	}
	defer resp.Body.Close()
	var s limitSample
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for class, dst := range map[string]*int{"read": &s.read, "write": &s.write} {
			prefix := `nixs3q_cache_request_limit{class="` + class + `"} `
			if v, ok := strings.CutPrefix(line, prefix); ok {
				if n, err := strconv.ParseFloat(v, 64); err == nil {
					*dst = int(n)
					found++
				}
			}
		}
	}
	return s, found == 2
}

func fmtSamples(samples []limitSample) string {
	var b strings.Builder
	for i, s := range samples {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d(%d)", s.write, s.read)
	}
	return b.String()
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// daemonDir is a fresh directory for a daemon of the WAN group, named
// shortly: its socket path must stay within the 108 bytes of a Unix socket
// address also under a test's long temporary directory.
func (e *env) daemonDir(what string) string {
	e.daemons++
	return filepath.Join(e.dir, fmt.Sprintf("w%s%d", what, e.daemons))
}
