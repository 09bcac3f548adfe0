package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Peer is the process at the other end of a connection, as the kernel
// reports it (SO_PEERCRED): it cannot be forged by the client.
type Peer struct {
	UID, GID, PID int
}

// Access is what a peer may do.
type Access int

const (
	// ReadOnly peers may ask for status and ping.
	ReadOnly Access = iota
	// ReadWrite peers may also enqueue and retry.
	ReadWrite
)

// Handler carries out the operations a Server has decoded and checked. The
// daemon implements it. Methods may be called concurrently, for different
// connections. An error a method returns is sent to the client as the
// request's refusal: a *RefusedError as a refusal listing its paths, an
// error wrapping ErrPermission as a permission refusal, anything else with
// its message.
//
// A new operation is one more method here, one case in session.answer and
// one Client method. One that reports progress before its answer (waiting
// for paths to be uploaded, say) would take a callback that the Server turns
// into lines of its own, written under the connection's write deadline.
type Handler interface {
	// Access says what p may do. The Server asks at most once per
	// connection, before the first operation that changes the queue, and
	// refuses such operations to ReadOnly peers itself.
	Access(p Peer) Access
	// Enqueue queues req.Paths (never empty) durably and returns only
	// once they are committed.
	Enqueue(ctx context.Context, p Peer, req EnqueueRequest) (EnqueueResult, error)
	// Retry moves the named failed paths, all when paths is empty, back
	// to pending.
	Retry(ctx context.Context, p Peer, paths []string) (RetryResult, error)
	// Status reports the queue.
	Status(ctx context.Context) (*Status, error)
	// Wait reports where the closures of req.Paths (never empty) stand,
	// holding the answer as WaitRequest describes and returning early
	// when ctx is cancelled. It may serve the paths ahead of the backlog
	// for a peer with ReadWrite access.
	Wait(ctx context.Context, p Peer, req WaitRequest) (*WaitState, error)
}

// session is one connection's protocol state.
type session struct {
	h      Handler
	peer   Peer
	access *Access // nil until asked
	denied func(p Peer, op string)
}

// answer decodes one request line strictly, checks its version and the
// peer's access, and carries it out. It never panics on bad input.
func (s *session) answer(ctx context.Context, line []byte) response {
	var req request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return response{Code: codeMalformed, Error: "malformed request: " + err.Error()}
	}
	if dec.More() {
		return response{Code: codeMalformed, Error: "malformed request: trailing data after the JSON object"}
	}
	if req.Version != Version {
		return response{Code: codeVersion, Error: fmt.Sprintf("unsupported protocol version %d (this daemon speaks %d)", req.Version, Version)}
	}
	switch req.Op {
	case opPing:
		return response{OK: true}
	case opStatus:
		st, err := s.h.Status(ctx)
		if err != nil {
			return failure(err)
		}
		return response{OK: true, Status: st}
	case opWait:
		if len(req.Paths) == 0 {
			return response{Code: codeMalformed, Error: "no paths given"}
		}
		if req.HoldMillis < 0 {
			return response{Code: codeMalformed, Error: "negative hold"}
		}
		hold := MaxHold
		if req.HoldMillis < MaxHold.Milliseconds() {
			hold = time.Duration(req.HoldMillis) * time.Millisecond
		}
		st, err := s.h.Wait(ctx, s.peer, WaitRequest{Paths: req.Paths, Hold: hold, Since: req.Since})
		if err != nil {
			return failure(err)
		}
		return response{OK: true, Wait: st}
	case opEnqueue, opRetry:
		if s.access == nil {
			a := s.h.Access(s.peer)
			s.access = &a
		}
		if *s.access != ReadWrite {
			if s.denied != nil {
				s.denied(s.peer, req.Op)
			}
			return response{Code: codePermission, Error: fmt.Sprintf("%v: uid %d may not %s (allowed: root, the daemon's user, and the daemon's allowed group)", ErrPermission, s.peer.UID, req.Op)}
		}
		if req.Op == opRetry {
			res, err := s.h.Retry(ctx, s.peer, req.Paths)
			if err != nil {
				return failure(err)
			}
			return response{OK: true, Retried: res.Retried}
		}
		if len(req.Paths) == 0 && req.Drv == "" {
			return response{Code: codeMalformed, Error: "no paths given"}
		}
		res, err := s.h.Enqueue(ctx, s.peer, EnqueueRequest{Paths: req.Paths, Drv: req.Drv, Source: req.Source})
		if err != nil {
			return failure(err)
		}
		return response{OK: true, Added: res.Added, AlreadyQueued: res.AlreadyQueued, Requeued: res.Requeued}
	default:
		return response{Code: codeMalformed, Error: fmt.Sprintf("unknown op %q", req.Op)}
	}
}

// failure turns a Handler's error into a negative response.
func failure(err error) response {
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		listed := refused.Refused[:min(len(refused.Refused), MaxRefusals)]
		return response{Code: codeRefused, Error: refused.Error(), Refused: listed, RefusedCount: refused.Invalid()}
	case errors.Is(err, ErrPermission):
		return response{Code: codePermission, Error: err.Error()}
	}
	return response{Error: err.Error()}
}
