package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sd "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/queue"
)

// activatedListener returns the socket systemd passed (LISTEN_FDS), or nil
// when the daemon was not socket-activated and must create its own.
func activatedListener() (net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	switch len(ls) {
	case 0:
		return nil, nil
	case 1:
		if ls[0] == nil {
			return nil, fmt.Errorf("socket activation: the passed file descriptor is not a listening socket")
		}
		return ls[0], nil
	default:
		for _, l := range ls {
			if l != nil {
				l.Close()
			}
		}
		return nil, fmt.Errorf("socket activation: expected one socket, systemd passed %d", len(ls))
	}
}

// notifier reports the daemon's life to systemd when NOTIFY_SOCKET is set;
// without it every call is a no-op.
type notifier struct {
	log *zap.Logger
}

func (n notifier) send(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		n.log.Debug("sd_notify failed", zap.Error(err))
	}
}

// run sends READY=1 once ready is closed, then STATUS= with the queue depth
// every few seconds and WATCHDOG=1 at half the watchdog interval, but only
// while the queue answers, so that a wedged daemon is restarted. When ctx
// ends it sends STOPPING=1.
func (n notifier) run(ctx context.Context, ready <-chan struct{}, q *queue.Queue, cacheNote func() string) {
	select {
	case <-ready:
	case <-ctx.Done():
		n.send(sd.SdNotifyStopping)
		return
	}
	n.send(sd.SdNotifyReady + "\n" + "STATUS=" + statusLine(q, cacheNote()))
	wd, _ := sd.SdWatchdogEnabled(false)
	statusEvery := 5 * time.Second
	tick := statusEvery
	if wd > 0 && wd/2 < tick {
		tick = wd / 2
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	lastStatus := time.Now()
	for {
		select {
		case <-ctx.Done():
			n.send(sd.SdNotifyStopping + "\nSTATUS=stopping")
			return
		case <-t.C:
		}
		if _, err := q.Stats(); err != nil {
			n.log.Warn("queue does not answer; not feeding the watchdog", zap.Error(err))
			continue
		}
		msg := ""
		if wd > 0 {
			msg = sd.SdNotifyWatchdog
		}
		if time.Since(lastStatus) >= statusEvery {
			if msg != "" {
				msg += "\n"
			}
			msg += "STATUS=" + statusLine(q, cacheNote())
			lastStatus = time.Now()
		}
		if msg != "" {
			n.send(msg)
		}
	}
}

func statusLine(q *queue.Queue, note string) string {
	st, err := q.Stats()
	if err != nil {
		return "queue unavailable: " + err.Error()
	}
	s := fmt.Sprintf("%d pending, %d in flight, %d failed; %d uploaded", st.Pending, st.Leased, st.Failed, st.Uploaded)
	if note != "" {
		s += "; " + note
	}
	return s
}
