//go:build e2e

package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// hookBound is the longest a hook run may take: the hook promises to exit
// within about two seconds whatever the daemon does.
const hookBound = 2 * time.Second

// TestDaemonDown: with the daemon stopped (and then stalled) builds still
// succeed, the hook returns quickly and spools, and once the daemon runs
// again the spooled paths reach the bucket.
func TestDaemonDown(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-down")
	key := n.generateKey(t, ctx, "e2e-down-1")
	opts := newDaemonOpts(t, "s3://e2e-down?endpoint="+srv.host+"&scheme=http&region=us-east-1", key.secretFile, srv.daemonEnv(n))
	startDaemon(t, opts).stop()
	h := hookSetup{socket: opts.socket, stateDir: opts.stateDir}

	// Stopped daemon: the build succeeds and every hook run spools.
	nonce := newNonce(t)
	start := time.Now()
	roots := n.build(t, ctx, nonce, "all", h)
	t.Logf("nix-build of 4 derivations with the daemon down: %s", time.Since(start).Round(time.Millisecond))
	spooled := spoolFiles(t, opts.stateDir)
	if len(spooled) < 4 {
		t.Fatalf("%d spool file(s) after building 4 derivations with the daemon down, want 4", len(spooled))
	}
	r := runHook(t, opts.socket, opts.stateDir, roots[:1])
	t.Logf("hook with the daemon down: %s, said %q", r.took.Round(time.Microsecond), strings.TrimSpace(r.stderr))
	if r.took > hookBound {
		t.Errorf("hook took %s with the daemon down, want under %s", r.took, hookBound)
	}
	if !strings.Contains(r.stderr, "spooled") {
		t.Errorf("hook with the daemon down did not say it spooled: %q", r.stderr)
	}
	if got := len(spoolFiles(t, opts.stateDir)); got != len(spooled)+1 {
		t.Errorf("%d spool files after one more hook run, want %d", got, len(spooled)+1)
	}
	if c := narinfoCount(bucket.list(t, ctx)); c != 0 {
		t.Fatalf("%d narinfos in the bucket although the daemon never ran with the paths", c)
	}

	// Daemon back: the spool is ingested and published.
	done := timed(t, "daemon restart, spool ingestion and upload")
	d := startDaemon(t, opts)
	waitDrained(t, ctx, opts.socket, 2*time.Minute)
	done()
	if left := spoolFiles(t, opts.stateDir); len(left) != 0 {
		t.Errorf("spool files left after ingestion: %v", left)
	}
	closure := n.closure(t, ctx, roots)
	t.Cleanup(func() { n.deletePaths(t, closure) })
	cc := verifyCache(t, ctx, bucket, key.public)
	requirePublished(t, cc, n.pathInfo(t, ctx, closure))

	// Stalled daemon (SIGSTOP): connections are accepted by the kernel but
	// never answered. The hook must give up in time and spool.
	d.signal(syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			d.signal(syscall.SIGCONT)
		}
	})
	nonce2 := newNonce(t)
	start = time.Now()
	roots2 := n.build(t, ctx, nonce2, "single", h)
	t.Logf("nix-build of 1 derivation with the daemon stalled: %s", time.Since(start).Round(time.Millisecond))
	r = runHook(t, opts.socket, opts.stateDir, roots2)
	t.Logf("hook with the daemon stalled: %s, said %q", r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
	if r.took > hookBound {
		t.Errorf("hook took %s with the daemon stalled, want under %s", r.took, hookBound)
	}
	if !strings.Contains(r.stderr, "spooled") {
		t.Errorf("hook with the daemon stalled did not say it spooled: %q", r.stderr)
	}
	if len(spoolFiles(t, opts.stateDir)) < 2 {
		t.Errorf("no spool files from the build and the hook run while the daemon was stalled")
	}
	d.signal(syscall.SIGCONT)
	stopped = false
	done = timed(t, "stalled daemon resumed: spool ingestion and upload")
	deadline := time.Now().Add(time.Minute)
	for len(spoolFiles(t, opts.stateDir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	waitDrained(t, ctx, opts.socket, 2*time.Minute)
	done()
	if left := spoolFiles(t, opts.stateDir); len(left) != 0 {
		t.Errorf("spool files left after the daemon resumed: %v", left)
	}
	cc = verifyCache(t, ctx, bucket, key.public)
	requirePublished(t, cc, n.pathInfo(t, ctx, n.closure(t, ctx, roots2)))
}
