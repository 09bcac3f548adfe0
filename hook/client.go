package hook

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
)

// Client is one connection to the daemon, with one method per operation.
// Requests on it are answered in order; it is not safe for concurrent use.
//
// Every method returns the daemon's answer or an error: a refusal by the
// daemon (*Error, *RefusedError; the request changed nothing), or a failure
// to get an answer (errors.Is(err, ErrUnavailable); an enqueue or retry that
// was sent may or may not have been carried out).
type Client struct {
	conn *unixConn
	r    *bufio.Reader
}

// Dial connects to the daemon's socket, giving up at ctx's deadline. The
// deadline then bounds every request on the connection; ctx's cancellation
// without a deadline is not observed during a request.
func Dial(ctx context.Context, socket string) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable("hook: connect to %s: %w", socket, err)
	}
	deadline, _ := ctx.Deadline()
	conn, err := dialUnix(socket, deadline)
	if err != nil {
		return nil, unavailable("hook: connect to %s: %w", socket, err)
	}
	return &Client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, request{Op: opPing})
	return err
}

// Enqueue queues req.Paths. It returns only after the daemon has committed
// and fsynced them, so a nil error means they survive a crash. When any path
// is invalid the whole request is refused with a *RefusedError.
func (c *Client) Enqueue(ctx context.Context, req EnqueueRequest) (EnqueueResult, error) {
	resp, err := c.do(ctx, request{Op: opEnqueue, Paths: req.Paths, Drv: req.Drv, Source: req.Source})
	if err != nil {
		return EnqueueResult{}, err
	}
	return EnqueueResult{Added: resp.Added, AlreadyQueued: resp.AlreadyQueued, Requeued: resp.Requeued}, nil
}

// Retry moves the named failed paths, or all failed paths when none are
// named, back to pending.
func (c *Client) Retry(ctx context.Context, paths []string) (RetryResult, error) {
	resp, err := c.do(ctx, request{Op: opRetry, Paths: paths})
	if err != nil {
		return RetryResult{}, err
	}
	return RetryResult{Retried: resp.Retried}, nil
}

// Status reports the daemon's queue, uploads and failures. Every local user
// who can reach the socket may ask.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.do(ctx, request{Op: opStatus})
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, &Error{Message: "the daemon sent no status"}
	}
	return resp.Status, nil
}

// do sends req and reads its response, bounded by the deadline of the
// context the Client was dialled with, or of ctx when it is earlier. A
// negative answer becomes the matching typed error.
func (c *Client) do(ctx context.Context, req request) (response, error) {
	req.Version = Version
	line, err := encodeLine(req)
	if err != nil {
		return response{}, err
	}
	if err := ctx.Err(); err != nil {
		return response{}, unavailable("hook: send: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok && (c.conn.deadline.IsZero() || dl.Before(c.conn.deadline)) {
		c.conn.deadline = dl
	}
	if _, err := c.conn.Write(line); err != nil {
		return response{}, unavailable("hook: send: %w", err)
	}
	b, err := readLine(c.r, MaxMessageSize)
	if err != nil {
		return response{}, unavailable("hook: read reply: %w", err)
	}
	var resp response
	if err := json.Unmarshal(b, &resp); err != nil {
		return response{}, unavailable("hook: malformed reply: %w", err)
	}
	if !resp.OK {
		return resp, answerError(resp, len(req.Paths))
	}
	return resp, nil
}

// readLine reads one newline-terminated line of at most max bytes (newline
// included) and returns it without the newline. A longer line gives
// ErrTooLarge; the rest of it is left unread. EOF before any byte is io.EOF;
// EOF in the middle of a line is io.ErrUnexpectedEOF.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > max {
			return nil, ErrTooLarge
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case len(buf) > 0 && err == io.EOF:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}
