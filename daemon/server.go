package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/nix"
)

// idleTimeout closes connections that send nothing for this long.
const idleTimeout = 2 * time.Minute

// serve accepts connections until l is closed.
func (d *Daemon) serve(ctx context.Context, l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			d.log.Warn("accept failed", zap.Error(err))
			time.Sleep(50 * time.Millisecond)
			continue
		}
		d.conns.Add(1)
		go func() {
			defer d.conns.Done()
			d.handleConn(ctx, conn)
		}()
	}
}

// handleConn answers requests on one connection, one line each, in order.
func (d *Daemon) handleConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	p, err := peerOf(conn)
	if err != nil {
		d.log.Warn("rejecting connection", zap.Error(err))
		return
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(idleTimeout))
		if ctx.Err() != nil {
			return
		}
		line, err := hook.ReadLine(r, hook.MaxMessageSize)
		if errors.Is(err, hook.ErrTooLarge) {
			d.reply(conn, hook.Response{Error: fmt.Sprintf("message exceeds %d bytes", hook.MaxMessageSize)})
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil && !isTimeout(err) {
				d.log.Debug("connection read failed", zap.Error(err), zap.Int("pid", p.pid))
			}
			return
		}
		resp := d.handle(ctx, p, line)
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if !d.reply(conn, resp) {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (d *Daemon) reply(conn net.Conn, resp hook.Response) bool {
	b, err := hook.EncodeLine(resp)
	if err != nil {
		b, _ = hook.EncodeLine(hook.Response{Error: "reply too large"})
	}
	_, err = conn.Write(b)
	return err == nil
}

// handle decodes and carries out one request. It never panics on bad input.
func (d *Daemon) handle(ctx context.Context, p peer, line []byte) hook.Response {
	var req hook.Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return hook.Response{Error: "malformed request: " + err.Error()}
	}
	if dec.More() {
		return hook.Response{Error: "malformed request: trailing data after the JSON object"}
	}
	if req.Version != hook.Version {
		return hook.Response{Error: fmt.Sprintf("unsupported protocol version %d (this daemon speaks %d)", req.Version, hook.Version)}
	}
	switch req.Op {
	case hook.OpPing:
		return hook.Response{OK: true}
	case hook.OpStatus:
		st, err := d.status()
		if err != nil {
			return hook.Response{Error: err.Error()}
		}
		return hook.Response{OK: true, Status: st}
	case hook.OpEnqueue, hook.OpRetry:
		if !d.access.mayWrite(p) {
			d.log.Warn("refused request from unauthorised user", zap.String("op", req.Op), zap.Int("uid", p.uid), zap.Int("pid", p.pid))
			return hook.Response{Error: fmt.Sprintf("permission denied: uid %d may not %s (allowed: root, the daemon's user, and the daemon's allowed group)", p.uid, req.Op)}
		}
		if req.Op == hook.OpRetry {
			return d.retry(req.Paths)
		}
		return d.enqueue(ctx, req.Paths, req.Source)
	default:
		return hook.Response{Error: fmt.Sprintf("unknown op %q", req.Op)}
	}
}

// validate returns why path may not be queued, or "" when it may.
func (d *Daemon) validate(path string) string {
	if _, err := nix.ParseStorePath(d.cfg.StoreDir, path); err != nil {
		return err.Error()
	}
	if _, err := os.Lstat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "does not exist (not built, or garbage-collected)"
		}
		return err.Error()
	}
	return ""
}

// enqueue validates every path and, when all are valid, queues them durably.
func (d *Daemon) enqueue(ctx context.Context, paths []string, source string) hook.Response {
	if len(paths) == 0 {
		return hook.Response{Error: "no paths given"}
	}
	var refused []hook.Refusal
	for _, p := range paths {
		if why := d.validate(p); why != "" {
			refused = append(refused, hook.Refusal{Path: p, Reason: why})
		}
	}
	if len(refused) > 0 {
		return hook.Response{Error: fmt.Sprintf("%d of %d path(s) refused; nothing queued", len(refused), len(paths)), Refused: refused}
	}
	res, err := d.q.Enqueue(ctx, paths)
	if err != nil {
		d.log.Error("enqueue failed", zap.Error(err))
		return hook.Response{Error: "enqueue failed: " + err.Error()}
	}
	if res.Added+res.Requeued > 0 {
		d.log.Debug("queued", zap.Strings("paths", paths), zap.String("source", source), zap.Int("added", res.Added))
	}
	return hook.Response{OK: true, Added: res.Added, AlreadyQueued: res.AlreadyQueued, Requeued: res.Requeued}
}

func (d *Daemon) retry(paths []string) hook.Response {
	n, err := d.q.Retry(paths)
	if err != nil {
		return hook.Response{Error: "retry failed: " + err.Error()}
	}
	if n > 0 {
		d.log.Info("failed items moved back to pending", zap.Int("count", n))
	}
	return hook.Response{OK: true, Retried: n}
}
