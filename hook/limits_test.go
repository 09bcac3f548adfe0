package hook

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// emfileListener fails Accept with EMFILE until closed.
type emfileListener struct {
	mu    sync.Mutex
	calls int
	done  chan struct{}
	once  sync.Once
}

func (l *emfileListener) Accept() (Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	l.mu.Lock()
	l.calls++
	l.mu.Unlock()
	return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

func (l *emfileListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }

// Running out of descriptors makes Serve back off exponentially, up to a
// second, instead of retrying every 50 ms.
func TestServeBacksOffOnEMFILE(t *testing.T) {
	var mu sync.Mutex
	var backoffs []time.Duration
	srv := &Server{Handler: &fakeHandler{}, Log: func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == EventAcceptFailed {
			backoffs = append(backoffs, e.Backoff)
		}
	}}
	l := &emfileListener{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, l) }()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	<-done
	l.mu.Lock()
	calls := l.calls
	l.mu.Unlock()
	// 5, 10, 20, ... 640 ms, then 1 s: about 9 calls in 1.5 s; a fixed
	// 50 ms pause would make 30.
	if calls < 3 || calls > 12 {
		t.Errorf("%d accept calls in 1.5s of EMFILE", calls)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(backoffs); i++ {
		if backoffs[i] < backoffs[i-1] || backoffs[i] > time.Second {
			t.Errorf("backoffs %v do not grow up to a second", backoffs)
			break
		}
	}
}

// A request whose line trickles in byte by byte is cut off after
// RequestTimeout from its first byte, however active the peer is; an idle
// connection holds no request deadline.
func TestServerWholeRequestDeadline(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: &fakeHandler{access: ReadWrite}, RequestTimeout: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, netListener{l}) }()
	defer func() { cancel(); <-done }()

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		if _, err := c.Write([]byte(" ")); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a trickling request held its connection for %v with a 300ms request timeout", took)
	}
}

// A ReadOnly peer's request line is limited to ReadOnlyLineLimit; a
// ReadWrite peer's to MaxMessageSize.
func TestServerReadOnlyLineLimit(t *testing.T) {
	sock := serve(t, &fakeHandler{access: ReadOnly}, nil)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Write([]byte(strings.Repeat("x", 64<<10)))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	if !strings.Contains(string(buf[:n]), "message exceeds 4096 bytes") {
		t.Errorf("answer to a long line from a read-only peer: %q", buf[:n])
	}
}
