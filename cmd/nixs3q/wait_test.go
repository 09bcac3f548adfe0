package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/progress"
)

// scriptedHandler answers wait requests with its states in turn (the last
// one again once they run out) and records the Since of each request.
type scriptedHandler struct {
	mu     sync.Mutex
	states []*hook.WaitState
	since  []uint64
}

func (h *scriptedHandler) Access(hook.Peer) hook.Access { return hook.ReadOnly }
func (h *scriptedHandler) Enqueue(context.Context, hook.Peer, hook.EnqueueRequest) (hook.EnqueueResult, error) {
	return hook.EnqueueResult{}, errors.New("not here")
}
func (h *scriptedHandler) Retry(context.Context, hook.Peer, []string) (hook.RetryResult, error) {
	return hook.RetryResult{}, errors.New("not here")
}
func (h *scriptedHandler) Status(context.Context) (*hook.Status, error) { return &hook.Status{}, nil }
func (h *scriptedHandler) Wait(_ context.Context, _ hook.Peer, req hook.WaitRequest) (*hook.WaitState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since = append(h.since, req.Since)
	st := h.states[0]
	if len(h.states) > 1 {
		h.states = h.states[1:]
	}
	return st, nil
}

type unixL struct{ net.Listener }

func (l unixL) Accept() (hook.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// serveScripted serves h on a socket after delay (to exercise the
// client's reconnecting) until the test ends.
func serveScripted(t *testing.T, h hook.Handler, delay time.Duration) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	listen := func() net.Listener {
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Error(err)
		}
		return l
	}
	var l net.Listener
	if delay == 0 {
		l = listen() // listening before the client dials
	}
	go func() {
		defer close(done)
		if l == nil {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			if l = listen(); l == nil {
				return
			}
		}
		(&hook.Server{Handler: h}).Serve(ctx, unixL{l})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return sock
}

func TestWaitPathsFollowsTheDaemon(t *testing.T) {
	a, b := "/nix/store/"+strings.Repeat("a", 32)+"-a", "/nix/store/"+strings.Repeat("b", 32)+"-b"
	h := &scriptedHandler{states: []*hook.WaitState{
		{Version: 1, Paths: []hook.WaitPath{{Path: a, State: hook.WaitPending}, {Path: b, State: hook.WaitPending, Attempts: 1, Reason: "timed out"}}},
		{Version: 2, Paths: []hook.WaitPath{{Path: a, State: hook.WaitUploading}, {Path: b, State: hook.WaitPending}},
			Progress: hook.WaitProgress{PathsTotal: 4, Uploaded: 1, BytesTotal: 2000, BytesDone: 500,
				Largest: &hook.Transfer{Path: a, NarSize: 1500, Read: 300}}},
		{Version: 3, Done: true, Paths: []hook.WaitPath{{Path: a, State: hook.WaitPublished, Uploaded: 3}, {Path: b, State: hook.WaitFailed, Reason: "access denied"}},
			Progress: hook.WaitProgress{PathsTotal: 4, Uploaded: 3, Failed: 1, BytesTotal: 2000, BytesDone: 2000}},
	}}
	sock := serveScripted(t, h, 1500*time.Millisecond)
	var out bytes.Buffer
	// A clock a second further on every reading: every update is printed.
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tick := func() time.Time { clock = clock.Add(time.Second); return clock }
	disp := progress.New(progress.Config{Out: &out, Interval: time.Millisecond, Now: tick})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := waitPaths(ctx, sock, []string{a, b}, 0, disp, false)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(err.Error(), "1 of 2 path(s) not published") {
		t.Fatalf("waitPaths: %v, want exit 1 for the failed path", err)
	}
	if got := h.since; len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 2 {
		t.Errorf("requests carried since %v, want 0, 1, 2", got)
	}
	s := out.String()
	for _, want := range []string{
		"cannot reach the daemon", "the daemon answers again",
		"2 of 2 waiting in the queue, retrying after 1 failed attempt(s): timed out",
		"1/4 paths, 500 B of 2.0 KiB", "uploading " + a + " (20% of 1.5 KiB)",
		"4/4 paths done in ", ": 3 uploaded (2.0 KiB of NAR", "1 failed",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

func TestWaitPathsTimesOut(t *testing.T) {
	a := "/nix/store/" + strings.Repeat("a", 32) + "-a"
	h := &scriptedHandler{states: []*hook.WaitState{{Version: 1, Paths: []hook.WaitPath{{Path: a, State: hook.WaitUploading}}}}}
	sock := serveScripted(t, h, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := waitPaths(ctx, sock, []string{a}, 300*time.Millisecond, nil, true)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), a+": uploading") {
		t.Fatalf("waitPaths: %v, want exit 2 naming the unfinished path", err)
	}
}

// refusingHandler refuses every wait, listing only the first
// hook.MaxRefusals of its refusals as the daemon's Server does.
type refusingHandler struct{ scriptedHandler }

func (h *refusingHandler) Access(hook.Peer) hook.Access { return hook.ReadWrite }

func (h *refusingHandler) Wait(_ context.Context, _ hook.Peer, req hook.WaitRequest) (*hook.WaitState, error) {
	var refused []hook.Refusal
	for _, p := range req.Paths {
		refused = append(refused, hook.Refusal{Path: p, Reason: "not in the store"})
	}
	return nil, &hook.RefusedError{Refused: refused, Total: len(req.Paths)}
}

// More refused paths than a reply lists: the message counts all of them
// and says how many are not shown.
func TestWaitPathsRefusedCountsAll(t *testing.T) {
	var paths []string
	for i := range hook.MaxRefusals + 50 {
		paths = append(paths, fmt.Sprintf("/tmp/not-a-store-path-%d", i))
	}
	sock := serveScripted(t, &refusingHandler{}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := waitPaths(ctx, sock, paths, 0, nil, false)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("waitPaths: %v, want exit 2", err)
	}
	msg := err.Error()
	want := fmt.Sprintf("%d of %d path(s) cannot be waited for", len(paths), len(paths))
	if !strings.Contains(msg, want) || !strings.Contains(msg, "... and 50 more") {
		t.Errorf("message %q lacks %q or the count of unlisted paths", msg[:min(len(msg), 200)], want)
	}
}

// A user who may only read is held to short requests: waiting for more
// paths than fit is a usage error that says what to do.
func TestWaitPathsTooManyForReadOnly(t *testing.T) {
	var paths []string
	for i := range 100 {
		paths = append(paths, fmt.Sprintf("/nix/store/%032d-p", i))
	}
	h := &scriptedHandler{states: []*hook.WaitState{{Version: 1, Done: true}}}
	sock := serveScripted(t, h, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := waitPaths(ctx, sock, paths, 0, nil, false)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "fewer paths") {
		t.Fatalf("waitPaths: %v, want exit 2 asking for fewer paths", err)
	}
}

// refusingEnqueuer refuses every enqueue as the daemon does a path that is
// not in the store.
type refusingEnqueuer struct{ refusingHandler }

func (h *refusingEnqueuer) Enqueue(_ context.Context, _ hook.Peer, req hook.EnqueueRequest) (hook.EnqueueResult, error) {
	var refused []hook.Refusal
	for _, p := range req.Paths {
		refused = append(refused, hook.Refusal{Path: p, Reason: "does not exist (not built, or garbage-collected)"})
	}
	return hook.EnqueueResult{}, &hook.RefusedError{Refused: refused, Total: len(req.Paths)}
}

// push --wait with a path the daemon refuses exits 2, like wait PATH and
// copy with a bad path (the README's "2 on bad arguments"), naming it.
func TestPushRefusedPathExits2(t *testing.T) {
	sock := serveScripted(t, &refusingEnqueuer{}, 0)
	gone := "/nix/store/" + strings.Repeat("a", 32) + "-gone"
	for _, args := range [][]string{{"--socket", sock, "--wait", gone}, {"--socket", sock, gone}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := runPush(ctx, args)
		cancel()
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), gone+": does not exist") {
			t.Errorf("push %v: %v, want exit 2 naming the refused path", args, err)
		}
	}
}

// statusHandler answers every status request with st.
type statusHandler struct {
	scriptedHandler
	st hook.Status
}

func (h *statusHandler) Status(context.Context) (*hook.Status, error) { st := h.st; return &st, nil }

// A wait for the whole queue does not wait for spool files the daemon
// refuses to read: it exits 1 with the reason, and status shows it.
func TestWaitDrainedUnreadSpool(t *testing.T) {
	h := &statusHandler{st: hook.Status{Spooled: 2, SpoolProblem: "not read: hook: spool /x/spool is writable by group or others (mode 0777): chmod 700 it"}}
	sock := serveScripted(t, h, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := waitDrained(ctx, sock, 5*time.Second, 10*time.Millisecond, nil)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("waitDrained: %v, want exit 1 naming the spool problem", err)
	}
	var out bytes.Buffer
	printStatus(&out, &h.st)
	if !strings.Contains(out.String(), "spool:      2 file(s) not read: hook: spool /x/spool is writable") {
		t.Errorf("status does not show the spool problem:\n%s", out.String())
	}
}

// A daemon at its connection limit answers "too many connections": wait
// asks again, as when the daemon is unreachable, instead of exiting 1 as
// if a path had failed.
func TestWaitPathsRetriesBusyDaemon(t *testing.T) {
	a := "/nix/store/" + strings.Repeat("a", 32) + "-a"
	h := &scriptedHandler{states: []*hook.WaitState{{Version: 1, Done: true, Paths: []hook.WaitPath{{Path: a, State: hook.WaitPublished}}}}}
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); (&hook.Server{Handler: h, MaxConns: 1}).Serve(ctx, unixL{l}) }()
	t.Cleanup(func() { cancel(); <-served })
	// Another client takes the one connection, for a second and a half.
	busy, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	time.AfterFunc(1500*time.Millisecond, func() { busy.Close() })
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	var out bytes.Buffer
	disp := progress.New(progress.Config{Out: &out, Interval: time.Hour})
	if err := waitPaths(wctx, sock, []string{a}, 0, disp, false); err != nil {
		t.Fatalf("waitPaths against a daemon busy for 1.5s: %v, want success once it has room", err)
	}
	// The refusal is written before the client sends its request, so the
	// client sees either it or a broken pipe; either way it asks again.
	if !strings.Contains(out.String(), "asking again every second") {
		t.Errorf("the wait did not say that it asks again:\n%s", out.String())
	}
}

// A zero or negative --interval would make wait ask the daemon in a tight
// loop, and a negative --timeout would silently mean "for ever": both are
// bad arguments, refused before the daemon is asked.
func TestWaitRejectsBadDurations(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{
		{"--socket", sock, "--interval", "0"},
		{"--socket", sock, "--interval", "-1s"},
		{"--socket", sock, "--timeout", "-5s"},
		{"--socket", sock, "--timeout", "-5s", "/nix/store/" + strings.Repeat("a", 32) + "-a"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := runWait(ctx, args)
		cancel()
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "must be positive") {
			t.Errorf("wait %v: %v, want exit 2 for a bad duration", args, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := runPush(ctx, []string{"--socket", sock, "--wait", "--timeout", "-5s", "/nix/store/" + strings.Repeat("a", 32) + "-a"})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "must be positive") {
		t.Errorf("push --wait --timeout -5s: %v, want exit 2 for a bad duration", err)
	}
}
