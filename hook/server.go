package hook

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
	// Backoff is how long the Server waits after an EventAcceptFailed.
	Backoff time.Duration
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
	// EventConnLimit: a connection over MaxConns or MaxConnsPerUID was
	// refused.
	EventConnLimit
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
	// RequestTimeout bounds one whole request from its first byte:
	// reading it, carrying it out and writing the answer, default 30
	// seconds.
	RequestTimeout time.Duration
	// MaxConns bounds the connections served at once, default 1024.
	MaxConns int
	// MaxConnsPerUID bounds the connections of one user other than root
	// and the Server's own user, default 32, so that one local user
	// cannot take all of MaxConns. A connection over a limit gets a
	// one-line refusal before any of its input is read, and is closed.
	MaxConnsPerUID int
	// Log, when set, receives what the Server cannot tell a client. It is
	// called from the connections' goroutines, concurrently.
	Log func(Event)

	conns  sync.WaitGroup
	limits connLimits
}

// ReadOnlyLineLimit bounds a request line from a peer with ReadOnly access:
// ping and status requests are a few dozen bytes.
const ReadOnlyLineLimit = 4 << 10

func (s *Server) idleTimeout() time.Duration    { return orDefault(s.IdleTimeout, 2*time.Minute) }
func (s *Server) writeTimeout() time.Duration   { return orDefault(s.WriteTimeout, 10*time.Second) }
func (s *Server) requestTimeout() time.Duration { return orDefault(s.RequestTimeout, 30*time.Second) }
func (s *Server) maxConns() int                 { return orDefaultInt(s.MaxConns, 1024) }
func (s *Server) maxConnsPerUID() int           { return orDefaultInt(s.MaxConnsPerUID, 32) }

func orDefaultInt(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

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
//
// Each connection's peer credentials are read and checked against the
// connection limits before any of its input is read. Accept errors, such
// as running out of file descriptors (EMFILE), back off exponentially from
// 5 ms up to a second instead of spinning.
func (s *Server) Serve(ctx context.Context, l Listener) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	self := os.Geteuid()
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log(Event{Kind: EventAcceptFailed, Err: err, Backoff: backoff})
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		p, err := peerOf(conn)
		if err != nil {
			conn.Close()
			s.log(Event{Kind: EventNoCredentials, Err: err})
			continue
		}
		capped := p.UID != 0 && p.UID != self
		if !s.limits.acquire(p.UID, capped, s.maxConns(), s.maxConnsPerUID()) {
			_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			s.reply(conn, response{Code: codeBusy, Error: "too many connections; try again later"})
			conn.Close()
			s.log(Event{Kind: EventConnLimit, Peer: p})
			continue
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			defer s.limits.release(p.UID)
			s.serveConn(ctx, conn, p)
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
// Between requests it holds no read buffer: it waits for a request's first
// byte with a one-byte read, for at most IdleTimeout. From that byte on,
// reading the line, carrying it out and writing the answer must finish
// within RequestTimeout. A ReadOnly peer may send lines of at most
// ReadOnlyLineLimit bytes, a ReadWrite one MaxMessageSize.
func (s *Server) serveConn(ctx context.Context, conn Conn, p Peer) {
	defer conn.Close()
	// Shutdown interrupts a connection waiting for its next request.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	access := s.Handler.Access(p)
	sess := &session{h: s.Handler, peer: p, access: &access,
		denied: func(p Peer, op string) { s.log(Event{Kind: EventDenied, Peer: p, Op: op}) }}
	limit := MaxMessageSize
	if access != ReadWrite {
		limit = ReadOnlyLineLimit
	}
	var r *bufio.Reader
	for {
		if ctx.Err() != nil {
			return
		}
		if r == nil || r.Buffered() == 0 {
			r = nil
			_ = conn.SetReadDeadline(time.Now().Add(s.idleTimeout()))
			var first [1]byte
			if n, err := conn.Read(first[:]); n == 0 {
				if err != nil && !errors.Is(err, io.EOF) && ctx.Err() == nil && !isTimeout(err) {
					s.log(Event{Kind: EventReadFailed, Peer: p, Err: err})
				}
				return
			}
			r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(first[:]), conn), 4<<10)
		}
		if ctx.Err() != nil {
			return
		}
		deadline := time.Now().Add(s.requestTimeout())
		_ = conn.SetReadDeadline(deadline)
		_ = conn.SetWriteDeadline(deadline)
		line, err := readLine(r, limit)
		if errors.Is(err, ErrTooLarge) {
			s.reply(conn, response{Code: codeTooLarge, Error: fmt.Sprintf("message exceeds %d bytes", limit)})
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil && !isTimeout(err) {
				s.log(Event{Kind: EventReadFailed, Peer: p, Err: err})
			}
			return
		}
		resp := sess.answer(ctx, line)
		wd := time.Now().Add(s.writeTimeout())
		if deadline.Before(wd) {
			wd = deadline
		}
		_ = conn.SetWriteDeadline(wd)
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

// connLimits counts the connections being served, overall and per uid.
type connLimits struct {
	mu    sync.Mutex
	total int
	byUID map[int]int
}

// acquire takes a slot for a connection of uid, counted against the
// per-uid limit when capped; it reports false, taking nothing, when a
// limit is reached.
func (l *connLimits) acquire(uid int, capped bool, maxTotal, maxPerUID int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= maxTotal || (capped && l.byUID[uid] >= maxPerUID) {
		return false
	}
	if l.byUID == nil {
		l.byUID = make(map[int]int)
	}
	l.total++
	l.byUID[uid]++
	return true
}

func (l *connLimits) release(uid int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byUID[uid]--; l.byUID[uid] == 0 {
		delete(l.byUID, uid)
	}
}

// held returns how many connections of uid are being served.
func (l *connLimits) held(uid int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byUID[uid]
}
