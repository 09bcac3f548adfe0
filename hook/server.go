package hook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"
)

// Conn is a connection the Server answers on. *net.UnixConn satisfies it;
// the interface keeps the net package out of the hook binary.
type Conn interface {
	io.ReadWriteCloser
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	// SyscallConn gives the descriptor, to read the peer's credentials.
	SyscallConn() (syscall.RawConn, error)
}

// Listener is where the Server accepts connections. A net.Listener of Unix
// connections satisfies it through a one-line adapter.
type Listener interface {
	Accept() (Conn, error)
	Close() error
}

// Event is something a Server reports to its Log.
type Event struct {
	Kind EventKind
	Peer Peer   // zero for EventAcceptFailed and EventNoCredentials
	Op   string // for EventDenied
	Err  error
}

// EventKind says what an Event is about.
type EventKind int

const (
	// EventAcceptFailed: accepting a connection failed; the Server waits a
	// little and goes on.
	EventAcceptFailed EventKind = iota
	// EventNoCredentials: a connection's peer credentials could not be
	// read; it was closed.
	EventNoCredentials
	// EventDenied: a ReadOnly peer asked to change the queue.
	EventDenied
	// EventReadFailed: a connection broke in the middle of a request.
	EventReadFailed
)

// Server is the daemon's half of the protocol: it accepts connections, reads
// each peer's credentials, frames, decodes strictly and size-limits every
// request, checks its version and the peer's access, and hands what is
// valid to a Handler. Malformed or oversized input gets an error answer and
// changes nothing; the Server keeps serving. Everything that concerns one
// connection (deadlines, buffers, limits) is decided in serveConn.
//
// Like http.Server, a Server is configured through its fields, set before
// Serve and not changed after; the zero value of each means its default.
type Server struct {
	// Handler carries out the requests. Required.
	Handler Handler
	// IdleTimeout closes a connection that sends nothing for this long,
	// default 2 minutes.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one answer, default 10 seconds.
	WriteTimeout time.Duration
	// Log, when set, receives what the Server cannot tell a client. It is
	// called from the connections' goroutines, concurrently.
	Log func(Event)

	conns sync.WaitGroup
}

func (s *Server) idleTimeout() time.Duration  { return orDefault(s.IdleTimeout, 2*time.Minute) }
func (s *Server) writeTimeout() time.Duration { return orDefault(s.WriteTimeout, 10*time.Second) }

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Serve accepts connections on l and answers them until ctx is cancelled.
// Then it closes l at once, so that new clients fail fast (the hook spools),
// lets each connection finish the request it is carrying out, and returns
// once every connection is closed. Requests are carried out with ctx.
func (s *Server) Serve(ctx context.Context, l Listener) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			s.log(Event{Kind: EventAcceptFailed, Err: err})
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.serveConn(ctx, conn)
		}()
	}
	s.conns.Wait()
}

func (s *Server) log(e Event) {
	if s.Log != nil {
		s.Log(e)
	}
}

// serveConn answers requests on one connection, one line each, in order.
func (s *Server) serveConn(ctx context.Context, conn Conn) {
	defer conn.Close()
	// Shutdown interrupts a connection waiting for its next request.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	p, err := peerOf(conn)
	if err != nil {
		s.log(Event{Kind: EventNoCredentials, Err: err})
		return
	}
	sess := &session{h: s.Handler, peer: p, denied: func(p Peer, op string) { s.log(Event{Kind: EventDenied, Peer: p, Op: op}) }}
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(s.idleTimeout()))
		if ctx.Err() != nil {
			return
		}
		line, err := readLine(r, MaxMessageSize)
		if errors.Is(err, ErrTooLarge) {
			s.reply(conn, response{Code: codeTooLarge, Error: fmt.Sprintf("message exceeds %d bytes", MaxMessageSize)})
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil && !isTimeout(err) {
				s.log(Event{Kind: EventReadFailed, Peer: p, Err: err})
			}
			return
		}
		resp := sess.answer(ctx, line)
		_ = conn.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
		if !s.reply(conn, resp) {
			return
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// reply writes one answer and reports whether the connection is still good.
func (s *Server) reply(conn Conn, resp response) bool {
	b, err := encodeLine(resp)
	if err != nil {
		b, _ = encodeLine(response{Error: "reply too large"})
	}
	_, err = conn.Write(b)
	return err == nil
}

// peerOf reads the connecting process's credentials from the kernel.
func peerOf(conn Conn) (Peer, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("hook: peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("hook: peer credentials: %w", err)
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("hook: peer credentials: %w", cerr)
	}
	return Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}, nil
}
