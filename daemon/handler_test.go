package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/progress"
	"github.com/nixs3q/nixs3q/queue"
	"github.com/nixs3q/nixs3q/uploader"
)

// newTestHandler returns a handler over a fresh queue and store directory.
func newTestHandler(t *testing.T) (*handler, string) {
	t.Helper()
	base := t.TempDir()
	storeDir := filepath.Join(base, "store")
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &handler{storeDir: storeDir, stateDir: filepath.Join(base, "state"), storeName: "file:///cache",
		q: openQueue(t, 3), access: access{self: 999, groupID: -1},
		active: func() []queue.Item { return nil }, transfers: func() []uploader.Transfer { return nil },
		meter: newRateMeter(time.Second), waiters: newWaiters(), tracker: progress.NewTracker(), log: zaptest.NewLogger(t)}
	return h, storeDir
}

func TestHandlerAccess(t *testing.T) {
	h, _ := newTestHandler(t)
	if h.Access(hook.Peer{UID: 0}) != hook.ReadWrite || h.Access(hook.Peer{UID: 999}) != hook.ReadWrite {
		t.Error("root or the daemon's user may not write")
	}
	if h.Access(hook.Peer{UID: 1000, GID: 1000}) != hook.ReadOnly {
		t.Error("another user may write")
	}
}

func TestHandlerEnqueueValidatesEveryPath(t *testing.T) {
	h, storeDir := newTestHandler(t)
	ctx := context.Background()
	good := filepath.Join(storeDir, strings.Repeat("1", 32)+"-good")
	os.WriteFile(good, nil, 0o644)
	missing := filepath.Join(storeDir, strings.Repeat("2", 32)+"-missing")
	_, err := h.Enqueue(ctx, hook.Peer{}, hook.EnqueueRequest{Paths: []string{good, missing, "/etc/passwd"}})
	var refused *hook.RefusedError
	if !errors.As(err, &refused) || refused.Total != 3 || len(refused.Refused) != 2 ||
		refused.Refused[0].Path != missing || !strings.Contains(refused.Refused[0].Reason, "does not exist") {
		t.Fatalf("enqueue with invalid paths: %v (%+v)", err, refused)
	}
	if st, _ := h.q.Stats(); st.Pending != 0 {
		t.Fatalf("a refused enqueue queued %d path(s)", st.Pending)
	}
	res, err := h.Enqueue(ctx, hook.Peer{}, hook.EnqueueRequest{Paths: []string{good, good}})
	if err != nil || res.Added != 1 {
		t.Fatalf("enqueue: %+v, %v", res, err)
	}
}

func TestHandlerStatus(t *testing.T) {
	h, _ := newTestHandler(t)
	since := time.Now().Add(-time.Minute)
	h.active = func() []queue.Item { return []queue.Item{{Path: "/nix/store/a", Attempts: 1, LeasedAt: since}} }
	h.transfers = func() []uploader.Transfer {
		return []uploader.Transfer{{Path: "/nix/store/b", NarSize: 100, Read: 40, Started: since}}
	}
	h.meter.add(500)
	h.publicKey = "cache-1:AAAA"
	if _, err := hook.WriteSpool(hook.SpoolDir(h.stateDir), []string{"/nix/store/c"}); err != nil {
		t.Fatal(err)
	}
	it := claimOne(t, h.q, "/nix/store/d")
	if _, err := h.q.Fail(it.Path, "boom", queue.FailOptions{Permanent: true}); err != nil {
		t.Fatal(err)
	}
	st, err := h.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Store != "file:///cache" || st.PublicKey != "cache-1:AAAA" || st.Spooled != 1 || st.Failed != 1 || st.ThroughputBytesSec != 500 {
		t.Fatalf("status %+v", st)
	}
	if len(st.Active) != 1 || st.Active[0].Path != "/nix/store/a" || !st.Active[0].Since.Equal(since) {
		t.Fatalf("in flight %+v", st.Active)
	}
	if len(st.Uploading) != 1 || st.Uploading[0].Read != 40 {
		t.Fatalf("uploading %+v", st.Uploading)
	}
	if len(st.Failures) != 1 || st.Failures[0].Path != "/nix/store/d" || st.Failures[0].LastError != "boom" {
		t.Fatalf("failures %+v", st.Failures)
	}
}
