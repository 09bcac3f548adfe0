package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/queue"
	"github.com/nixs3q/nixs3q/uploader"
)

// fakeUploader decides each path's fate with a function; a nil function
// uploads successfully at once.
type fakeUploader struct {
	mu      sync.Mutex
	fn      func(ctx context.Context, root string) (uploader.Result, error)
	calls   map[string]int
	batches int
	// cacheErr is what EnsureCacheInfo returns.
	cacheErr error
}

func (f *fakeUploader) Upload(ctx context.Context, root string) (uploader.Result, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[root]++
	fn := f.fn
	f.mu.Unlock()
	if fn == nil {
		return uploader.Result{Uploaded: 1, Bytes: 100}, nil
	}
	return fn(ctx, root)
}

// PublishBuild counts the call under the build item and reports one
// realisation and an uploaded log.
func (f *fakeUploader) PublishBuild(ctx context.Context, drv string) (uploader.BuildResult, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[hook.BuildItem(drv)]++
	f.mu.Unlock()
	return uploader.BuildResult{Realisations: 1, Log: uploader.LogUploaded, LogBytes: 10}, nil
}

// WantsBuild wants every build but those named "*-unwanted.drv".
func (f *fakeUploader) WantsBuild(drv string) bool { return !strings.HasSuffix(drv, "-unwanted.drv") }

func (f *fakeUploader) UploadBatch(ctx context.Context, roots []string, done func(string, uploader.Result, error)) {
	f.mu.Lock()
	f.batches++
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range roots {
		wg.Go(func() {
			res, err := f.Upload(ctx, r)
			done(r, res, err)
		})
	}
	wg.Wait()
}

func (f *fakeUploader) Active() []uploader.Transfer { return nil }

func (f *fakeUploader) Expedite([]string) {}

func (f *fakeUploader) EnsureCacheInfo(ctx context.Context) error { return f.cacheErr }

func (f *fakeUploader) count(root string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[root]
}

// env is a running daemon over a fake store directory.
type env struct {
	t        *testing.T
	storeDir string
	stateDir string
	socket   string
	q        *queue.Queue
	up       *fakeUploader
	d        *Daemon
	cancel   context.CancelFunc
	done     chan error
	logs     *observer.ObservedLogs // everything the daemon logged
}

type option func(*Config, *queue.Config)

func start(t *testing.T, up *fakeUploader, opts ...option) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, storeDir: filepath.Join(base, "store"), stateDir: filepath.Join(base, "state"),
		socket: filepath.Join(base, "run", "d.sock"), up: up}
	if err := os.MkdirAll(e.storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	qcfg := queue.Config{Path: filepath.Join(base, "queue.db"), MaxAttempts: 3, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	cfg := Config{Socket: e.socket, StateDir: e.stateDir, StoreDir: e.storeDir, Workers: 2,
		ShutdownGrace: 200 * time.Millisecond, SpoolInterval: 20 * time.Millisecond, StoreName: "test"}
	for _, o := range opts {
		o(&cfg, &qcfg)
	}
	q, err := queue.Open(qcfg, zaptest.NewLogger(t).Named("queue"))
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	obs, logs := observer.New(zapcore.DebugLevel)
	e.logs = logs
	d, err := New(cfg, q, up, zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), obs)))
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-e.done:
		t.Fatalf("daemon exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready")
	}
	t.Cleanup(func() {
		e.stop()
		if err := q.Check(); err != nil {
			t.Errorf("queue invariants: %v", err)
		}
		q.Close()
	})
	return e
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Error("daemon did not stop")
	}
}

// storePath makes a real file in the fake store and returns its path.
func (e *env) storePath(name string) string {
	var b [20]byte
	rand.Read(b[:])
	p := filepath.Join(e.storeDir, nix.EncodeBase32(b[:])[:32]+"-"+name)
	if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// dial connects to the daemon; the caller closes the client.
func (e *env) dial() *hook.Client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := hook.Dial(ctx, e.socket)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// client dials the daemon; the connection is closed at the test's end.
func (e *env) client() *hook.Client {
	e.t.Helper()
	c := e.dial()
	e.t.Cleanup(func() { c.Close() })
	return c
}

func ctx5s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// enqueue queues paths; the daemon's refusal is returned, a failure to
// reach it ends the test.
func (e *env) enqueue(paths ...string) (hook.EnqueueResult, error) {
	e.t.Helper()
	c := e.dial()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.Enqueue(ctx, hook.EnqueueRequest{Paths: paths, Source: "push"})
	if errors.Is(err, hook.ErrUnavailable) {
		e.t.Fatalf("enqueue: %v", err)
	}
	return res, err
}

func (e *env) mustEnqueue(paths ...string) hook.EnqueueResult {
	e.t.Helper()
	res, err := e.enqueue(paths...)
	if err != nil {
		e.t.Fatalf("enqueue: %v", err)
	}
	return res
}

func (e *env) status() *hook.Status {
	e.t.Helper()
	c := e.dial()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		e.t.Fatalf("status: %v", err)
	}
	return st
}

// waitFor polls cond until it holds or the deadline passes.
func (e *env) waitFor(what string, cond func(*hook.Status) bool) *hook.Status {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := e.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; status %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEnqueueUploadsAndCounts(t *testing.T) {
	e := start(t, &fakeUploader{})
	a, b := e.storePath("a"), e.storePath("b")
	res, err := e.enqueue(a, b, a)
	if err != nil || res.Added != 2 {
		t.Fatalf("enqueue: %+v, %v", res, err)
	}
	st := e.waitFor("both uploaded", func(s *hook.Status) bool { return s.Completed == 2 })
	if st.Pending != 0 || st.InFlight != 0 || st.Uploaded != 2 || st.UploadedBytes != 200 {
		t.Fatalf("status %+v", st)
	}
	if e.up.count(a) != 1 || e.up.count(b) != 1 {
		t.Fatalf("upload calls: a=%d b=%d", e.up.count(a), e.up.count(b))
	}
}

func TestInvalidPathsRefusedAndNothingQueued(t *testing.T) {
	e := start(t, &fakeUploader{})
	good := e.storePath("good")
	missing := filepath.Join(e.storeDir, strings.Repeat("0", 32)+"-missing")
	for _, tc := range []struct {
		name, path, reason string
	}{
		{"outside store", "/etc/passwd", "store directory"},
		{"relative", "nix/store/x", ""},
		{"missing", missing, "does not exist"},
		{"subpath", good + "/bin", ""},
		{"bad hash", filepath.Join(e.storeDir, "short-x"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.enqueue(good, tc.path)
			var refused *hook.RefusedError
			if !errors.As(err, &refused) || len(refused.Refused) != 1 || refused.Refused[0].Path != tc.path || !strings.Contains(refused.Refused[0].Reason, tc.reason) {
				t.Fatalf("error %v (%+v)", err, refused)
			}
		})
	}
	if st, _ := e.q.Stats(); st.Pending+st.Leased+int(st.Completed) != 0 {
		t.Fatalf("a refused request changed the queue: %+v", st)
	}
}

// Many hooks at once, as when Nix finishes many builds together: every one is
// acknowledged, every path is queued once.
func TestConcurrentHooks(t *testing.T) {
	block := make(chan struct{})
	up := &fakeUploader{fn: func(ctx context.Context, root string) (uploader.Result, error) {
		select {
		case <-block:
		case <-ctx.Done():
			return uploader.Result{}, ctx.Err()
		}
		return uploader.Result{Uploaded: 1}, nil
	}}
	e := start(t, up)
	const hooks = 40
	paths := make([]string, hooks)
	for i := range paths {
		paths[i] = e.storePath(fmt.Sprintf("p%d", i))
	}
	var wg sync.WaitGroup
	outs := make([]hook.Outcome, hooks)
	for i := 0; i < hooks; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			outs[i] = hook.Run(context.Background(), hook.Config{Socket: e.socket, StateDir: e.stateDir,
				OutPaths: paths[i] + " " + paths[(i+1)%hooks], Timeout: 5 * time.Second})
		}(i)
	}
	wg.Wait()
	for i, o := range outs {
		if !o.Queued || o.Message != "" {
			t.Fatalf("hook %d: %+v", i, o)
		}
	}
	st, err := e.q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending+st.Leased != hooks {
		t.Fatalf("queued %d+%d, want %d", st.Pending, st.Leased, hooks)
	}
	close(block)
	e.waitFor("all uploaded", func(s *hook.Status) bool { return s.Completed == hooks })
	for _, p := range paths {
		if n := e.up.count(p); n != 1 {
			t.Fatalf("%s uploaded %d times", p, n)
		}
	}
	// Items that wait while the workers are busy are taken in batches.
	e.up.mu.Lock()
	batches := e.up.batches
	e.up.mu.Unlock()
	if batches > hooks/4 {
		t.Errorf("%d items took %d batches; waiting items were not batched", hooks, batches)
	}
}

func TestSpoolIngestedAtStartAndWhileRunning(t *testing.T) {
	base := t.TempDir()
	storeDir := filepath.Join(base, "store")
	os.MkdirAll(storeDir, 0o755)
	early := filepath.Join(storeDir, strings.Repeat("1", 32)+"-early")
	os.WriteFile(early, nil, 0o644)
	stateDir := filepath.Join(base, "state")
	bad := filepath.Join(storeDir, strings.Repeat("2", 32)+"-gone")
	if _, err := hook.WriteSpool(hook.SpoolDir(stateDir), []string{early, bad, "/not/a/store/path"}); err != nil {
		t.Fatal(err)
	}
	e := start(t, &fakeUploader{}, func(c *Config, _ *queue.Config) { c.StoreDir = storeDir; c.StateDir = stateDir })
	e.storeDir = storeDir
	e.waitFor("the early spool file", func(s *hook.Status) bool { return s.Completed == 1 })
	if e.up.count(early) != 1 {
		t.Fatal("spooled path was not uploaded")
	}
	late := e.storePath("late")
	if _, err := hook.WriteSpool(hook.SpoolDir(stateDir), []string{late}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(); st.Spooled > 1 {
		t.Fatalf("status counts %d spool files, want at most the one just written", st.Spooled)
	}
	e.waitFor("the late spool file", func(s *hook.Status) bool { return s.Completed == 2 })
	if files, _ := hook.ListSpool(hook.SpoolDir(stateDir)); len(files) != 0 {
		t.Fatalf("ingested spool files left behind: %v", files)
	}
	if st := e.status(); st.Spooled != 0 {
		t.Fatalf("status counts %d spool files after ingestion", st.Spooled)
	}
}

func TestFailuresRetryAndFailedList(t *testing.T) {
	var mu sync.Mutex
	fail := true
	up := &fakeUploader{fn: func(ctx context.Context, root string) (uploader.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail && strings.HasSuffix(root, "-bad") {
			return uploader.Result{}, errors.New("connection reset by peer")
		}
		return uploader.Result{Uploaded: 1}, nil
	}}
	e := start(t, up)
	bad, good := e.storePath("bad"), e.storePath("good")
	e.mustEnqueue(bad, good)
	st := e.waitFor("bad in the failed list", func(s *hook.Status) bool { return s.Failed == 1 && s.Completed == 1 })
	if len(st.Failures) != 1 || st.Failures[0].Path != bad || st.Failures[0].Attempts != 3 || !strings.Contains(st.Failures[0].LastError, "connection reset") {
		t.Fatalf("failures %+v", st.Failures)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if res, err := e.client().Retry(ctx5s(t), nil); err != nil || res.Retried != 1 {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	e.waitFor("bad uploaded after retry", func(s *hook.Status) bool { return s.Failed == 0 && s.Completed == 2 })
}

func TestPermanentFailureSkipsRetries(t *testing.T) {
	up := &fakeUploader{fn: func(ctx context.Context, root string) (uploader.Result, error) {
		return uploader.Result{}, fmt.Errorf("nar: %w", uploader.ErrHashMismatch)
	}}
	e := start(t, up)
	p := e.storePath("corrupt")
	e.mustEnqueue(p)
	st := e.waitFor("failed", func(s *hook.Status) bool { return s.Failed == 1 })
	if st.Failures[0].Attempts != 1 || e.up.count(p) != 1 {
		t.Fatalf("a permanent error was retried: %+v", st.Failures)
	}
}

func TestGarbageCollectedPathDropped(t *testing.T) {
	up := &fakeUploader{fn: func(ctx context.Context, root string) (uploader.Result, error) {
		return uploader.Result{}, fmt.Errorf("closure of %s: %w", root, uploader.ErrPathGone)
	}}
	e := start(t, up)
	p := e.storePath("gc")
	e.mustEnqueue(p)
	st := e.waitFor("dropped", func(s *hook.Status) bool { return s.Dropped == 1 })
	if st.Failed != 0 || st.Pending != 0 || e.up.count(p) != 1 {
		t.Fatalf("status %+v, calls %d", st, e.up.count(p))
	}
}

// On shutdown an upload that outlives the grace period is interrupted and
// its item stays queued for the next start.
func TestShutdownLeavesUnfinishedQueued(t *testing.T) {
	started := make(chan struct{}, 1)
	up := &fakeUploader{fn: func(ctx context.Context, root string) (uploader.Result, error) {
		started <- struct{}{}
		<-ctx.Done()
		return uploader.Result{}, ctx.Err()
	}}
	e := start(t, up)
	p := e.storePath("slow")
	e.mustEnqueue(p)
	<-started
	begin := time.Now()
	e.stop()
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("shutdown took %v with a 200ms grace", took)
	}
	it, ok, err := e.q.Get(p)
	if err != nil || !ok || it.State != queue.Pending || it.Attempts != 0 {
		t.Fatalf("after shutdown: %+v ok=%v err=%v", it, ok, err)
	}
	if _, err := os.Stat(e.socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestStaleSocketReplacedLiveOneRefused(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	// A socket file nobody listens on: what a killed daemon leaves.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	nl, err := listenSocket(sock, -1)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer nl.Close()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, %v; want 0660", fi.Mode().Perm(), err)
	}
	if _, err := listenSocket(sock, -1); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Fatalf("a live socket was taken over: %v", err)
	}
	plain := filepath.Join(dir, "file")
	os.WriteFile(plain, nil, 0o644)
	if _, err := listenSocket(plain, -1); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("a regular file was replaced: %v", err)
	}
}

func TestAccess(t *testing.T) {
	groups := func(uid int) ([]int, error) {
		if uid == 1001 {
			return []int{100, 500}, nil
		}
		return nil, errors.New("no such user")
	}
	a := access{self: 999, groupID: 500, groupsOf: groups}
	none := access{self: 999, groupID: -1, groupsOf: groups}
	for _, tc := range []struct {
		a    access
		p    hook.Peer
		want bool
	}{
		{a, hook.Peer{UID: 0, GID: 0}, true},
		{a, hook.Peer{UID: 999, GID: 999}, true},
		{a, hook.Peer{UID: 1000, GID: 500}, true},  // primary group
		{a, hook.Peer{UID: 1001, GID: 100}, true},  // supplementary group
		{a, hook.Peer{UID: 1002, GID: 100}, false}, // unknown user, other group
		{none, hook.Peer{UID: 1001, GID: 500}, false},
		{none, hook.Peer{UID: 0}, true},
	} {
		if got := tc.a.mayWrite(tc.p); got != tc.want {
			t.Errorf("mayWrite(%+v) with group %d = %v, want %v", tc.p, tc.a.groupID, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Workers: -1}, "workers"},
		{Config{StateDir: "rel"}, "state directory"},
		{Config{Socket: "rel.sock"}, "socket"},
		{Config{StoreDir: "/nix/store/"}, "store directory"},
		{Config{AllowGroup: "no-such-group-nixs3q"}, "allowed group"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want error about %s", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

// Shutdown while workers finish in quick succession must not hang: a
// worker's wake-up for the scheduler never blocks once the scheduler has
// stopped listening.
func TestShutdownWhileBusyDoesNotHang(t *testing.T) {
	for round := 0; round < 20; round++ {
		up := &fakeUploader{fn: func(ctx context.Context, root string) (uploader.Result, error) {
			time.Sleep(time.Millisecond)
			return uploader.Result{Uploaded: 1}, nil
		}}
		e := start(t, up, func(c *Config, _ *queue.Config) { c.Workers = 3; c.BatchSize = 1 })
		var paths []string
		for i := 0; i < 30; i++ {
			paths = append(paths, e.storePath(fmt.Sprintf("p%d-%d", round, i)))
		}
		for _, p := range paths {
			e.mustEnqueue(p)
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		begin := time.Now()
		e.stop() // fails the test if Run does not return within 10s
		if took := time.Since(begin); took > 5*time.Second {
			t.Fatalf("round %d: shutdown took %v", round, took)
		}
	}
}

// Once shutdown begins the socket is closed at once, even while uploads
// use their grace period, so hooks spool instead of waiting.
func TestShutdownClosesSocketFirst(t *testing.T) {
	started := make(chan struct{}, 1)
	up := &fakeUploader{fn: func(ctx context.Context, root string) (uploader.Result, error) {
		started <- struct{}{}
		time.Sleep(500 * time.Millisecond) // within the grace: finishes normally
		return uploader.Result{Uploaded: 1}, nil
	}}
	e := start(t, up, func(c *Config, _ *queue.Config) { c.ShutdownGrace = 2 * time.Second })
	p := e.storePath("slow")
	e.mustEnqueue(p)
	<-started
	e.cancel()
	deadline := time.Now().Add(300 * time.Millisecond)
	for {
		if _, err := os.Stat(e.socket); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socket still open during the shutdown grace")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.cancel = func() {}
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop")
	}
	e.cancel = nil
	if it, ok, _ := e.q.Get(p); ok {
		t.Fatalf("upload within the grace was not recorded: %+v", it)
	}
}

// Paths that use up their attempts while the cache is unreachable go back to
// pending by themselves once uploads succeed again; a permanent failure
// stays in the failed list.
func TestOutageFailuresRevivedWhenCacheReturns(t *testing.T) {
	var mu sync.Mutex
	down := true
	up := &fakeUploader{fn: func(ctx context.Context, root string) (uploader.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasSuffix(root, "-denied") {
			return uploader.Result{}, fmt.Errorf("put: %w", uploader.ErrHashMismatch)
		}
		if down {
			return uploader.Result{}, errors.New("dial tcp 127.0.0.1:9000: connection refused")
		}
		return uploader.Result{Uploaded: 1}, nil
	}}
	e := start(t, up)
	a, b, denied := e.storePath("a"), e.storePath("b"), e.storePath("denied")
	e.mustEnqueue(a, b, denied)
	e.waitFor("all three failed", func(s *hook.Status) bool { return s.Failed == 3 })
	mu.Lock()
	down = false
	mu.Unlock()
	c := e.storePath("c")
	e.mustEnqueue(c)
	st := e.waitFor("outage failures uploaded", func(s *hook.Status) bool { return s.Completed == 3 && s.Failed == 1 })
	if len(st.Failures) != 1 || st.Failures[0].Path != denied {
		t.Fatalf("failed list %+v, want only the permanent failure", st.Failures)
	}
}

// Spool files not yet read count in the status, so that `nixs3q wait` does
// not return before what a hook spooled is queued.
func TestStatusCountsUnreadSpool(t *testing.T) {
	e := start(t, &fakeUploader{}, func(c *Config, _ *queue.Config) { c.SpoolInterval = time.Hour })
	p := e.storePath("spooled")
	if _, err := hook.WriteSpool(hook.SpoolDir(e.stateDir), []string{p}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(); st.Spooled != 1 || st.Pending != 0 {
		t.Fatalf("status %+v, want 1 spool file and nothing pending", st)
	}
}

// A cache that is permanently unusable stops the daemon before it listens
// or reads the spool.
func TestRunRefusesUnusableCache(t *testing.T) {
	base := t.TempDir()
	q, err := queue.Open(queue.Config{Path: filepath.Join(base, "queue.db")}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	stateDir, socket := filepath.Join(base, "state"), filepath.Join(base, "d.sock")
	if _, err := hook.WriteSpool(hook.SpoolDir(stateDir), []string{"/nix/store/x"}); err != nil {
		t.Fatal(err)
	}
	up := &fakeUploader{cacheErr: fmt.Errorf("check: %w", uploader.ErrStoreDirMismatch)}
	d, err := New(Config{Socket: socket, StateDir: stateDir, StoreName: "test"}, q, up, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); !errors.Is(err, ErrCacheUnusable) || !strings.Contains(err.Error(), "another store directory") {
		t.Fatalf("Run = %v, want ErrCacheUnusable naming the cause", err)
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Fatalf("socket created: %v", err)
	}
	if files, _ := hook.ListSpool(hook.SpoolDir(stateDir)); len(files) != 1 {
		t.Fatalf("spool files %v, want the one left unread", files)
	}
}

// TestBuildItems checks that an enqueue naming its derivation also queues
// the build, that a derivation alone (a content-addressed build whose
// outputs the hook could not know) is enough, that an unusable derivation
// refuses nothing, and that status counts what builds published.
func TestBuildItems(t *testing.T) {
	e := start(t, &fakeUploader{})
	out, drv := e.storePath("hello"), e.storePath("hello.drv")
	c := e.client()
	res, err := c.Enqueue(ctx5s(t), hook.EnqueueRequest{Paths: []string{out}, Drv: drv, Source: "hook"})
	if err != nil || res.Added != 2 {
		t.Fatalf("enqueue: %+v, %v; want the output and the build added", res, err)
	}
	ca := e.storePath("ca.drv")
	if res, err := c.Enqueue(ctx5s(t), hook.EnqueueRequest{Drv: ca, Source: "hook"}); err != nil || res.Added != 1 {
		t.Fatalf("enqueue of a derivation alone: %+v, %v", res, err)
	}
	gone := filepath.Join(e.storeDir, strings.Repeat("3", 32)+"-gone.drv")
	other := e.storePath("other")
	if res, err := c.Enqueue(ctx5s(t), hook.EnqueueRequest{Paths: []string{other}, Drv: gone, Source: "hook"}); err != nil || res.Added != 1 {
		t.Fatalf("enqueue with a missing derivation: %+v, %v; want the path queued, the derivation left out", res, err)
	}
	if _, err := c.Enqueue(ctx5s(t), hook.EnqueueRequest{Drv: gone, Source: "hook"}); err == nil {
		t.Error("an enqueue of nothing but a missing derivation was accepted")
	}
	plain, unwanted := e.storePath("plain"), e.storePath("x-unwanted.drv")
	if res, err := c.Enqueue(ctx5s(t), hook.EnqueueRequest{Paths: []string{plain}, Drv: unwanted, Source: "hook"}); err != nil || res.Added != 1 {
		t.Fatalf("enqueue with a build nothing is wanted of: %+v, %v; want only the path", res, err)
	}
	st := e.waitFor("everything done", func(s *hook.Status) bool { return s.Completed == 5 })
	if st.Realisations != 2 || st.Logs != 2 || st.Uploaded != 3 {
		t.Errorf("status %+v, want 2 realisations, 2 logs, 3 paths", st)
	}
	if e.up.count(hook.BuildItem(unwanted)) != 0 {
		t.Error("a build nothing was wanted of was processed")
	}
	for _, item := range []string{out, hook.BuildItem(drv), hook.BuildItem(ca), other} {
		if e.up.count(item) != 1 {
			t.Errorf("%s processed %d times", item, e.up.count(item))
		}
	}
	// Build items can be pushed by hand, and come from the spool.
	if _, err := e.enqueue(hook.BuildItem(e.storePath("not-a-derivation"))); err == nil {
		t.Error("a build item of a non-derivation was accepted")
	}
	spooled := e.storePath("spooled.drv")
	if _, err := hook.WriteSpool(hook.SpoolDir(e.stateDir), []string{hook.BuildItem(spooled)}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the spooled build", func(s *hook.Status) bool { return s.Completed == 6 })
	if e.up.count(hook.BuildItem(spooled)) != 1 {
		t.Error("spooled build not published")
	}
}
