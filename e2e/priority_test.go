//go:build e2e

package e2e

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// slowProxy is a reverse proxy on loopback in front of an S3 server that
// holds every request for delay before passing it on: a cache far away. It
// keeps the Host header, so that the client's SigV4 signatures still match.
type slowProxy struct {
	host     string // 127.0.0.1:PORT
	requests atomic.Int64
}

func startSlowProxy(t *testing.T, target string, delay time.Duration) *slowProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{host: l.Addr().String()}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = r.In.Host
	}, ErrorLog: log.New(io.Discard, "", 0)} // cancelled requests at shutdown are expected
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return p
}

// TestPushWaitAheadOfBacklog: a daemon has a long backlog queued behind a
// slow cache (every request to it takes 500 ms more). A CI job pushes its small
// closure with `push --wait`: it returns once that closure is published,
// while most of the backlog is still waiting, and real Nix substitutes the
// closure from the cache. `wait PATH` then answers at once; a path the
// daemon never saw makes it exit 1 with the reason.
func TestPushWaitAheadOfBacklog(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-prio")
	key := n.generateKey(t, ctx, "e2e-prio-1")
	proxy := startSlowProxy(t, bucket.endpoint, 500*time.Millisecond)

	const backlogSize = 200
	// Files above the uploader's small-NAR limit (256 KiB): small NARs
	// go up 64 at a time and would be no backlog at all.
	backlog := n.addFiles(t, ctx, newNonce(t), backlogSize, 300<<10)
	t.Cleanup(func() { n.deletePaths(t, backlog) })
	job := n.buildPlain(t, ctx, newNonce(t), "small")

	store := "s3://e2e-prio?endpoint=http://" + proxy.host + "&region=us-east-1"
	opts := newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n))
	opts.flags = []string{"--shutdown-grace", "1s"}
	d := startDaemon(t, opts)

	push(t, ctx, d.opts.socket, backlog...)
	// Let the backlog get going: its batch is claimed, looked up, and its
	// NARs stream, every streaming slot taken and the rest queued for one.
	deadline := time.Now().Add(time.Minute)
	for len(status(t, ctx, d.opts.socket).Uploading) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the backlog never started")
		}
		time.Sleep(50 * time.Millisecond)
	}

	start := time.Now()
	r := cli(t, ctx, d.opts.socket, append([]string{"push", "--wait", "--timeout", "2m", "--progress-interval", "500ms"}, job...)...)
	took := time.Since(start)
	if r.code != 0 {
		t.Fatalf("push --wait: exit %d after %s:\n%s%s", r.code, took, r.stdout, r.stderr)
	}
	st := status(t, ctx, d.opts.socket)
	published := int(st.Completed) - 1 // the job's root is one
	t.Logf("push --wait returned after %s; backlog then: %d pending, %d in flight, %d of %d published; %d requests through the proxy",
		took.Round(time.Millisecond), st.Pending, st.InFlight, published, backlogSize, proxy.requests.Load())
	t.Logf("push --wait printed:\n%s%s", r.stdout, r.stderr)
	if published >= backlogSize/2 {
		t.Errorf("%d of %d backlog paths were published before push --wait returned: the job's closure did not go ahead of the backlog", published, backlogSize)
	}

	// Not on a terminal: plain lines and a summary, no control characters.
	if strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("push --wait wrote terminal control characters into a log:\n%q", r.stderr)
	}
	if !strings.Contains(r.stderr, "nixs3q push: 2/2 paths done in ") || !strings.Contains(r.stderr, ": 2 uploaded (") {
		t.Errorf("push --wait printed no summary of the 2 paths it published:\n%s", r.stderr)
	}

	// The job's closure is in the cache, consistent and signed; Nix
	// substitutes it.
	res := flowResult{roots: job}
	res.closure = n.closure(t, ctx, job)
	t.Cleanup(func() { n.deletePaths(t, res.closure) })
	res.local = n.pathInfo(t, ctx, res.closure)
	res.cache = verifyCache(t, ctx, bucket, key.public)
	requirePublished(t, res.cache, res.local)
	substituteAndCompare(t, ctx, n, bucket, key, res)

	// wait PATH on what is published answers at once; a path the daemon
	// never saw fails with its reason.
	start = time.Now()
	r = cli(t, ctx, d.opts.socket, append([]string{"wait", "--timeout", "30s"}, job...)...)
	if r.code != 0 || time.Since(start) > 10*time.Second {
		t.Errorf("wait on a published path: exit %d after %s:\n%s", r.code, time.Since(start), r.stderr)
	}
	unknown := "/nix/store/" + strings.Repeat("0", 32) + "-never-queued"
	r = cli(t, ctx, d.opts.socket, "wait", "--timeout", "30s", unknown)
	if r.code != 1 || !strings.Contains(r.stderr, "unknown: "+unknown+": not queued") {
		t.Errorf("wait on a path never queued: exit %d, want 1 with its reason:\n%s", r.code, r.stderr)
	}
	if st := status(t, ctx, d.opts.socket); st.Pending+st.InFlight == 0 {
		t.Logf("note: the backlog drained during the checks")
	}
}
