package hook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHandler records what reaches it and answers with its functions.
type fakeHandler struct {
	mu      sync.Mutex
	access  Access
	calls   []string
	enqueue func(EnqueueRequest) (EnqueueResult, error)
	status  *Status
}

func (f *fakeHandler) note(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *fakeHandler) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeHandler) Access(p Peer) Access {
	f.note(fmt.Sprintf("access uid=%d", p.UID))
	return f.access
}

func (f *fakeHandler) Enqueue(ctx context.Context, p Peer, req EnqueueRequest) (EnqueueResult, error) {
	f.note("enqueue " + strings.Join(req.Paths, ",") + " " + req.Source)
	if f.enqueue != nil {
		return f.enqueue(req)
	}
	return EnqueueResult{Added: len(req.Paths)}, nil
}

func (f *fakeHandler) Retry(ctx context.Context, p Peer, paths []string) (RetryResult, error) {
	f.note("retry " + strings.Join(paths, ","))
	return RetryResult{Retried: 3}, nil
}

func (f *fakeHandler) Wait(ctx context.Context, p Peer, req WaitRequest) (*WaitState, error) {
	f.note(fmt.Sprintf("wait %s hold=%s since=%d", strings.Join(req.Paths, ","), req.Hold, req.Since))
	return &WaitState{Version: 7, Done: true, Paths: []WaitPath{{Path: req.Paths[0], State: WaitPublished, Uploaded: 2}}}, nil
}

func (f *fakeHandler) Status(ctx context.Context) (*Status, error) {
	f.note("status")
	return f.status, nil
}

// netListener adapts a net.Listener for Serve, as the daemon does.
type netListener struct{ net.Listener }

func (l netListener) Accept() (Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// serve runs a Server with h on a fresh socket until the test ends.
func serve(t *testing.T, h Handler, log func(Event)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: h, Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, netListener{l}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancellation")
		}
	})
	return sock
}

func dial(t *testing.T, sock string) (*Client, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	c, err := Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, ctx
}

func TestClientServerOperations(t *testing.T) {
	h := &fakeHandler{access: ReadWrite, status: &Status{Store: "s3://x", Pending: 2}}
	c, ctx := dial(t, serve(t, h, nil))
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	res, err := c.Enqueue(ctx, EnqueueRequest{Paths: []string{"/nix/store/a-x", "/nix/store/b-y"}, Source: "push"})
	if err != nil || res.Added != 2 {
		t.Fatalf("enqueue: %+v, %v", res, err)
	}
	rr, err := c.Retry(ctx, nil)
	if err != nil || rr.Retried != 3 {
		t.Fatalf("retry: %+v, %v", rr, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Store != "s3://x" || st.Pending != 2 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	want := []string{fmt.Sprintf("access uid=%d", os.Getuid()), "enqueue /nix/store/a-x,/nix/store/b-y push", "retry ", "status"}
	if got := h.seen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("handler saw %q, want %q (access asked once per connection)", got, want)
	}
}

func TestClientTypedErrors(t *testing.T) {
	refusals := []Refusal{{Path: "/nix/store/bad", Reason: "does not exist"}}
	h := &fakeHandler{access: ReadWrite, enqueue: func(req EnqueueRequest) (EnqueueResult, error) {
		switch req.Paths[0] {
		case "refuse":
			return EnqueueResult{}, &RefusedError{Refused: refusals, Total: len(req.Paths)}
		case "deny":
			return EnqueueResult{}, fmt.Errorf("%w: not today", ErrPermission)
		}
		return EnqueueResult{}, errors.New("enqueue failed: disk full")
	}}
	c, ctx := dial(t, serve(t, h, nil))

	_, err := c.Enqueue(ctx, EnqueueRequest{Paths: []string{"refuse", "/nix/store/good"}})
	var refused *RefusedError
	if !errors.As(err, &refused) || len(refused.Refused) != 1 || refused.Paths()[0] != "/nix/store/bad" ||
		refused.Refused[0].Reason != "does not exist" || err.Error() != "1 of 2 path(s) refused; nothing queued" {
		t.Fatalf("refusal: %v (%+v)", err, refused)
	}
	if _, err := c.Enqueue(ctx, EnqueueRequest{Paths: []string{"deny"}}); !errors.Is(err, ErrPermission) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("handler's permission error: %v", err)
	}
	_, err = c.Enqueue(ctx, EnqueueRequest{Paths: []string{"other"}})
	var de *Error
	if !errors.As(err, &de) || de.Message != "enqueue failed: disk full" || errors.Is(err, ErrPermission) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("handler failure: %v", err)
	}
	// The connection still serves after refusals.
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// A peer the handler gives read access only may ask for status; enqueue
// and retry are refused by the Server before they reach the handler.
func TestServerRefusesWritesToReadOnlyPeers(t *testing.T) {
	var denied []Event
	var mu sync.Mutex
	h := &fakeHandler{access: ReadOnly, status: &Status{}}
	c, ctx := dial(t, serve(t, h, func(e Event) {
		mu.Lock()
		denied = append(denied, e)
		mu.Unlock()
	}))
	if _, err := c.Enqueue(ctx, EnqueueRequest{Paths: []string{"/nix/store/a-x"}}); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("enqueue by a read-only peer: %v", err)
	}
	if _, err := c.Retry(ctx, nil); !errors.Is(err, ErrPermission) {
		t.Fatalf("retry by a read-only peer: %v", err)
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("status by a read-only peer: %v", err)
	}
	for _, call := range h.seen() {
		if strings.HasPrefix(call, "enqueue") || strings.HasPrefix(call, "retry") {
			t.Fatalf("a refused request reached the handler: %q", h.seen())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(denied) != 2 || denied[0].Kind != EventDenied || denied[0].Op != "enqueue" || denied[0].Peer.UID != os.Getuid() {
		t.Fatalf("events %+v, want two EventDenied", denied)
	}
}

// Malformed, unknown and oversized requests get an error answer, reach no
// handler method, and leave the server serving.
func TestServerMalformedAndOversizedMessages(t *testing.T) {
	h := &fakeHandler{access: ReadWrite, status: &Status{}}
	sock := serve(t, h, nil)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	send := func(line string) string {
		t.Helper()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		b, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("no reply to %q: %v", line, err)
		}
		return b
	}
	for _, tc := range []struct{ in, want, code string }{
		{`not json`, "malformed", codeMalformed},
		{`{"v":1,"op":"enqueue","paths":"x"}`, "malformed", codeMalformed},
		{`{"v":1,"op":"enqueue","bogus":1}`, "malformed", codeMalformed},
		{`{"v":1,"op":"status"} trailing`, "malformed", codeMalformed},
		{`{"v":99,"op":"status"}`, "protocol version", codeVersion},
		{`{"v":1,"op":"launch"}`, "unknown op", codeMalformed},
		{`{"v":1,"op":"enqueue"}`, "no paths", codeMalformed},
	} {
		got := send(tc.in)
		if !strings.Contains(got, `"ok":false`) || !strings.Contains(got, tc.want) || !strings.Contains(got, `"code":"`+tc.code+`"`) {
			t.Errorf("%q -> %s, want an error mentioning %q with code %s", tc.in, got, tc.want, tc.code)
		}
	}
	if got := send(`{"v":1,"op":"ping"}`); !strings.Contains(got, `"ok":true`) {
		t.Fatalf("ping after errors: %s", got)
	}
	big, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	go big.Write([]byte(`{"v":1,"op":"enqueue","paths":["` + strings.Repeat("a", MaxMessageSize) + `"]}` + "\n"))
	big.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(big).ReadString('\n')
	if err != nil || !strings.Contains(line, "exceeds") {
		t.Fatalf("oversized: %q, %v", line, err)
	}
	c, ctx := dial(t, sock)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("server stopped serving: %v", err)
	}
	for _, call := range h.seen() {
		if !strings.HasPrefix(call, "access ") {
			t.Fatalf("bad messages reached the handler: %q", h.seen())
		}
	}
}

// The client maps the daemon's answers onto typed errors, including those
// of a daemon speaking another protocol version.
func TestClientVersionMismatch(t *testing.T) {
	sock, _ := fakeDaemon(t, func(request) response {
		return response{Code: codeVersion, Error: "unsupported protocol version 1 (this daemon speaks 2)"}
	})
	c, ctx := dial(t, sock)
	if _, err := c.Status(ctx); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "version") {
		t.Fatalf("status from a newer daemon: %v", err)
	}
}

func TestClientUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := Dial(ctx, filepath.Join(t.TempDir(), "none.sock")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("dial without a daemon: %v", err)
	}
	// A daemon that closes without answering.
	c, ctx := dial(t, stubDaemon(t, func(c net.Conn) { c.Close() }))
	if _, err := c.Enqueue(ctx, EnqueueRequest{Paths: []string{"/nix/store/a-x"}}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("enqueue to a mute daemon: %v", err)
	}
}

// Cancelling Serve's context closes the listener at once and interrupts
// idle connections, so Serve returns promptly.
func TestServeStopsOnCancel(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: &fakeHandler{}, IdleTimeout: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, netListener{l}) }()
	idle, ctx2 := dial(t, sock)
	if err := idle.Ping(ctx2); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return with an idle connection open")
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		t.Fatal("listener still accepts after cancellation")
	}
}

func TestWaitOperation(t *testing.T) {
	h := &fakeHandler{access: ReadOnly}
	c, ctx := dial(t, serve(t, h, nil))
	st, err := c.Wait(ctx, WaitRequest{Paths: []string{"/nix/store/a"}, Hold: 1500 * time.Millisecond, Since: 3})
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 7 || !st.Done || len(st.Paths) != 1 || st.Paths[0].State != WaitPublished || st.Paths[0].Uploaded != 2 || !st.Paths[0].Finished() {
		t.Errorf("wait state %+v", st)
	}
	// A read-only peer may wait; a hold beyond MaxHold is cut to it.
	if _, err := c.Wait(ctx, WaitRequest{Paths: []string{"/nix/store/b"}, Hold: time.Hour}); err != nil {
		t.Fatal(err)
	}
	waits := func() []string {
		var out []string
		for _, c := range h.seen() {
			if strings.HasPrefix(c, "wait ") {
				out = append(out, c)
			}
		}
		return out
	}
	want := []string{"wait /nix/store/a hold=1.5s since=3", "wait /nix/store/b hold=10s since=0"}
	if got := waits(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("handler saw %q, want %q", got, want)
	}
	// No paths: refused before the handler.
	if _, err := c.Wait(ctx, WaitRequest{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("wait without paths: %v, want ErrMalformed", err)
	}
	if len(waits()) != 2 {
		t.Errorf("the handler saw a wait without paths")
	}
}
