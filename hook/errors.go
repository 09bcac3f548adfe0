package hook

import (
	"errors"
	"fmt"
)

// Errors a Client returns. A daemon's refusal is an *Error or a
// *RefusedError and means the request changed nothing; errors.Is tells its
// kind. Anything else satisfies errors.Is(err, ErrUnavailable).
var (
	// ErrPermission: the connecting user may not change the queue (only
	// read its status). A Handler returns it, wrapped, to refuse a request.
	ErrPermission = errors.New("permission denied")
	// ErrVersion: the daemon does not speak this client's protocol Version.
	ErrVersion = errors.New("protocol version mismatch")
	// ErrMalformed: the daemon could not decode the request.
	ErrMalformed = errors.New("malformed request")
	// ErrBusy: the daemon serves as many connections as it allows (overall,
	// or for this user) and closed this one unread; asking again later may
	// succeed.
	ErrBusy = errors.New("daemon busy")
	// ErrUnavailable: no answer came (no daemon at the socket, a broken
	// connection, the deadline passed). A request that was sent may or may
	// not have been carried out.
	ErrUnavailable = errors.New("hook: daemon unavailable")
)

// Error is the daemon's refusal of a request, with its message as the
// daemon wrote it.
type Error struct {
	Code    string // kind of refusal; empty for a failure inside the daemon
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is reports the sentinel matching e's kind: ErrPermission, ErrVersion,
// ErrMalformed, ErrTooLarge or ErrBusy.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrPermission:
		return e.Code == codePermission
	case ErrVersion:
		return e.Code == codeVersion
	case ErrMalformed:
		return e.Code == codeMalformed
	case ErrTooLarge:
		return e.Code == codeTooLarge
	case ErrBusy:
		return e.Code == codeBusy
	}
	return false
}

// RefusedError is an enqueue refused because some of its paths are invalid.
// It is refused whole: none of its paths, valid or not, was queued.
type RefusedError struct {
	Refused []Refusal // the invalid paths, each with its reason (at most MaxRefusals on the wire)
	Total   int       // how many paths the request named
	// Count is how many paths were invalid; it may exceed len(Refused).
	// Zero means len(Refused).
	Count int
}

// Invalid returns how many of the request's paths were invalid.
func (e *RefusedError) Invalid() int { return max(e.Count, len(e.Refused)) }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%d of %d path(s) refused; nothing queued", e.Invalid(), e.Total)
}

// Paths lists the refused paths.
func (e *RefusedError) Paths() []string {
	out := make([]string, len(e.Refused))
	for i, r := range e.Refused {
		out[i] = r.Path
	}
	return out
}

// unavailableError marks a failure to get an answer, keeping its message.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

func unavailable(format string, args ...any) error {
	return &unavailableError{fmt.Errorf(format, args...)}
}

// answerError turns a negative response into the client's typed error.
func answerError(resp response, total int) error {
	if len(resp.Refused) > 0 {
		return &RefusedError{Refused: resp.Refused, Total: total, Count: resp.RefusedCount}
	}
	msg := resp.Error
	if msg == "" {
		msg = "the daemon refused the request without a reason"
	}
	return &Error{Code: resp.Code, Message: msg}
}
