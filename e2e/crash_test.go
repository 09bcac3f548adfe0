//go:build e2e

package e2e

import (
	"testing"
	"time"
)

const (
	crashPaths    = 300
	crashPathSize = 200 << 10
)

// TestCrashRecovery: kill -9 in the middle of a large queue. Whatever was
// published at the moment of the kill is consistent; after a restart with
// the same state directory every acknowledged path reaches the cache.
func TestCrashRecovery(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-crash")
	key := n.generateKey(t, ctx, "e2e-crash-1")
	paths := n.addFiles(t, ctx, newNonce(t), crashPaths, crashPathSize)
	t.Cleanup(func() { n.deletePaths(t, paths) })
	opts := newDaemonOpts(t, "s3://e2e-crash?endpoint="+srv.host+"&scheme=http&region=us-east-1", key.secretFile, srv.daemonEnv(n))
	opts.flags = []string{"--workers", "2"}
	d := startDaemon(t, opts)

	start := time.Now()
	push(t, ctx, opts.socket, paths...)
	var st daemonStatus
	for {
		st = status(t, ctx, opts.socket)
		// Kill while NARs are on their way, with many paths still queued.
		if st.Uploaded >= 10 && st.Pending+st.InFlight >= 100 && len(st.Uploading) > 0 {
			break
		}
		if st.Pending+st.InFlight == 0 {
			t.Fatalf("queue drained before the daemon could be killed: %+v", st)
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("no progress to interrupt after a minute: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.kill()
	t.Logf("SIGKILL after %s: uploaded %d, pending %d, in flight %d, %d NAR(s) being uploaded",
		time.Since(start).Round(time.Millisecond), st.Uploaded, st.Pending, st.InFlight, len(st.Uploading))

	// The cache is consistent at the moment of the crash.
	cc := verifyCache(t, ctx, bucket, key.public)
	published := len(cc.narinfos)
	if published >= crashPaths {
		t.Fatalf("all %d paths were published before the kill; nothing left to recover", published)
	}
	t.Logf("at the kill: %d of %d paths published, all consistent", published, crashPaths)

	// Same state directory and socket; the default number of workers.
	done := timed(t, "restart after SIGKILL and drain")
	restart := opts
	restart.flags = nil
	d2 := startDaemon(t, restart)
	after := status(t, ctx, opts.socket)
	if after.Pending+after.InFlight == 0 && after.Completed < crashPaths {
		t.Fatalf("restarted daemon lost the queue: %+v", after)
	}
	waitDrained(t, ctx, opts.socket, 3*time.Minute)
	done()
	final := status(t, ctx, d2.opts.socket)
	t.Logf("after the restart: uploaded %d, skipped %d, completed %d", final.Uploaded, final.Skipped, final.Completed)
	cc = verifyCache(t, ctx, bucket, key.public)
	requirePublished(t, cc, n.pathInfo(t, ctx, paths))
	if len(cc.narinfos) != crashPaths {
		t.Errorf("%d narinfos in the bucket, want %d", len(cc.narinfos), crashPaths)
	}
}
