package hook

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Client is one connection to the daemon. Requests on it are answered in
// order; it is not safe for concurrent use.
type Client struct {
	conn *unixConn
	r    *bufio.Reader
}

// Dial connects to the daemon's socket, giving up at ctx's deadline. The
// deadline then bounds every request on the connection; ctx's cancellation
// without a deadline is not observed during a request.
func Dial(ctx context.Context, socket string) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("hook: connect to %s: %w", socket, err)
	}
	deadline, _ := ctx.Deadline()
	conn, err := dialUnix(socket, deadline)
	if err != nil {
		return nil, fmt.Errorf("hook: connect to %s: %w", socket, err)
	}
	return &Client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}, nil
}

// Do sends req and waits for its response, bounded by the deadline of the
// context the Client was dialled with, or of ctx when it is earlier. A
// response with OK false is returned without error: it is the daemon's
// answer. An error means no answer arrived, and the request may or may not
// have been carried out.
func (c *Client) Do(ctx context.Context, req Request) (Response, error) {
	if req.Version == 0 {
		req.Version = Version
	}
	line, err := EncodeLine(req)
	if err != nil {
		return Response{}, err
	}
	if err := ctx.Err(); err != nil {
		return Response{}, fmt.Errorf("hook: send: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok && (c.conn.deadline.IsZero() || dl.Before(c.conn.deadline)) {
		c.conn.deadline = dl
	}
	if _, err := c.conn.Write(line); err != nil {
		return Response{}, fmt.Errorf("hook: send: %w", err)
	}
	b, err := ReadLine(c.r, MaxMessageSize)
	if err != nil {
		return Response{}, fmt.Errorf("hook: read reply: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(b, &resp); err != nil {
		return Response{}, fmt.Errorf("hook: malformed reply: %w", err)
	}
	return resp, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Call dials socket, sends one request and returns its response.
func Call(ctx context.Context, socket string, req Request) (Response, error) {
	c, err := Dial(ctx, socket)
	if err != nil {
		return Response{}, err
	}
	defer c.Close()
	return c.Do(ctx, req)
}

// ReadLine reads one newline-terminated line of at most max bytes (newline
// included) and returns it without the newline. A longer line gives
// ErrTooLarge; the rest of it is left unread. EOF before any byte is io.EOF;
// EOF in the middle of a line is io.ErrUnexpectedEOF.
func ReadLine(r *bufio.Reader, max int) ([]byte, error) {
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
