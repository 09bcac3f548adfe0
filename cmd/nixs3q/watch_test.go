package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/internal/vt"
	"github.com/nixs3q/nixs3q/progress"
)

// fakeStatuses answers with its statuses in turn (an error for nil) and
// cancels the watch after the last one.
func fakeStatuses(cancel func(), sts ...*hook.Status) func(context.Context) (*hook.Status, error) {
	i := 0
	return func(context.Context) (*hook.Status, error) {
		if i >= len(sts) {
			cancel()
			return nil, context.Canceled
		}
		st := sts[i]
		i++
		if st == nil {
			return nil, errors.New("cannot reach the nixs3q daemon at /x.sock")
		}
		return st, nil
	}
}

func TestStatusWatchRedrawsInPlace(t *testing.T) {
	scr := vt.New(100, 30)
	ctx, cancel := context.WithCancel(context.Background())
	fetch := fakeStatuses(cancel,
		&hook.Status{Store: "file:///c", Pending: 5, InFlight: 2,
			Uploading: []hook.Transfer{{Path: "/nix/store/aaa-big", NarSize: 100, Read: 40}},
			Failures:  []hook.Failure{{Path: "/nix/store/bbb-x", Attempts: 8, LastError: "timed out"}}},
		nil,
		&hook.Status{Store: "file:///c", Pending: 0})
	clock := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	watchLoop(ctx, progress.NewBlock(scr, true, func() (int, int) { return 100, 30 }), fetch, time.Millisecond, func() time.Time { return clock })
	got := scr.String()
	want := "nixs3q status, every 1ms: 10:00:00\n" +
		"cache:      file:///c\n" +
		"queue:      0 pending, 0 in flight, 0 failed\n" +
		"uploaded:   0 paths, 0 B; 0 already in the cache; 0 dropped (gone before upload)\n" +
		"throughput: 0 B/s (last 30s)"
	if got != want {
		t.Errorf("screen after three views:\n%s\nwant only the last view:\n%s", got, want)
	}
}

func TestStatusWatchPlain(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	fetch := fakeStatuses(cancel, &hook.Status{Store: "file:///c", Pending: 1}, nil)
	watchLoop(ctx, progress.NewBlock(&out, false, nil), fetch, time.Millisecond, time.Now)
	s := out.String()
	if strings.Count(s, "nixs3q status, every 1ms") != 2 || !strings.Contains(s, "1 pending") ||
		!strings.Contains(s, "cannot reach the nixs3q daemon") || strings.ContainsAny(s, "\x1b\r") {
		t.Errorf("plain watch output:\n%q", s)
	}
}
