package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/queue"
	"github.com/nixs3q/nixs3q/uploader"
)

func storePath(storeDir, c, name string) string {
	return filepath.Join(storeDir, strings.Repeat(c, 32)+"-"+name)
}

// waitFixture queues a (published), b (failed for good), c (uploading);
// d is unknown.
func waitFixture(t *testing.T) (*handler, *recorder, map[string]string) {
	t.Helper()
	h, storeDir := newTestHandler(t)
	p := map[string]string{
		"a": storePath(storeDir, "a", "a"), "b": storePath(storeDir, "b", "b"),
		"c": storePath(storeDir, "c", "c"), "d": storePath(storeDir, "d", "d"),
	}
	ctx := context.Background()
	if _, err := h.q.Enqueue(ctx, []string{p["a"], p["b"], p["c"]}); err != nil {
		t.Fatal(err)
	}
	if items, err := h.q.Claim(10); err != nil || len(items) != 3 {
		t.Fatalf("claim: %v %v", items, err)
	}
	rec := &recorder{q: h.q, meter: h.meter, health: newCacheHealth(nil, h.q, zaptest.NewLogger(t)),
		waiters: h.waiters, tracker: h.tracker, log: zaptest.NewLogger(t)}
	item := func(path string) queue.Item { it, _, _ := h.q.Get(path); return it }
	rec.record(ctx, outcome{item: item(p["a"]), res: uploader.Result{Uploaded: 2, Skipped: 3, NarBytes: 1000}})
	rec.record(ctx, outcome{item: item(p["b"]), err: fmt.Errorf("uploader: %s: %w", p["b"], uploader.ErrHashMismatch)})
	return h, rec, p
}

func TestWaitReportsEachPath(t *testing.T) {
	h, _, p := waitFixture(t)
	// The uploader planned c: a closure of 3, one present, two to upload.
	h.tracker.Planned(p["c"], []string{p["c"], "x", "y"}, map[string]uint64{p["c"]: 50, "x": 200})
	h.tracker.Finished("x", nil)
	st, err := h.Wait(context.Background(), hook.Peer{UID: 1000}, hook.WaitRequest{Paths: []string{p["a"], p["b"], p["c"], p["d"], p["a"]}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Done || st.Urgent || st.Version == 0 || len(st.Paths) != 4 {
		t.Fatalf("state %+v", st)
	}
	want := []struct{ state, reason string }{
		{hook.WaitPublished, ""}, {hook.WaitFailed, "do not match"}, {hook.WaitUploading, ""}, {hook.WaitUnknown, "nixs3q push --wait"},
	}
	for i, w := range want {
		got := st.Paths[i]
		if got.State != w.state || (w.reason == "") != (got.Reason == "") || !strings.Contains(got.Reason, w.reason) {
			t.Errorf("%s: %s %q, want %s %q", got.Path, got.State, got.Reason, w.state, w.reason)
		}
	}
	if a := st.Paths[0]; a.Uploaded != 2 || a.Skipped != 3 {
		t.Errorf("a: %+v", a)
	}
	// a: 5 paths, 1000 NAR bytes; b and d: one failed path each; c: its
	// plan (3 paths, x uploaded, 1 present, 250 bytes to upload).
	want2 := hook.WaitProgress{PathsTotal: 5 + 2 + 3, Uploaded: 2 + 1, Present: 3 + 1, Failed: 2, BytesTotal: 1250, BytesDone: 1200}
	if st.Progress != want2 {
		t.Errorf("progress %+v\nwant     %+v", st.Progress, want2)
	}
}

func TestWaitLongPoll(t *testing.T) {
	h, rec, p := waitFixture(t)
	ctx := context.Background()
	first, err := h.Wait(ctx, hook.Peer{}, hook.WaitRequest{Paths: []string{p["c"]}})
	if err != nil || first.Done {
		t.Fatalf("first answer %+v, %v", first, err)
	}
	// Nothing changes: held for the whole hold, same version.
	start := time.Now()
	st, err := h.Wait(ctx, hook.Peer{}, hook.WaitRequest{Paths: []string{p["c"]}, Hold: 300 * time.Millisecond, Since: first.Version})
	if err != nil || st.Version != first.Version || st.Done {
		t.Fatalf("held answer %+v, %v", st, err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("answered after %s, before the hold of 300ms", took)
	}
	// c is recorded while a request is held: it is answered at once.
	type answer struct {
		st  *hook.WaitState
		err error
		at  time.Time
	}
	got := make(chan answer, 1)
	go func() {
		st, err := h.Wait(ctx, hook.Peer{}, hook.WaitRequest{Paths: []string{p["c"]}, Hold: 20 * time.Second, Since: first.Version})
		got <- answer{st, err, time.Now()}
	}()
	time.Sleep(100 * time.Millisecond)
	it, _, _ := h.q.Get(p["c"])
	recorded := time.Now()
	rec.record(ctx, outcome{item: it, res: uploader.Result{Uploaded: 1}})
	select {
	case a := <-got:
		if a.err != nil || !a.st.Done || a.st.Paths[0].State != hook.WaitPublished {
			t.Fatalf("answer after the record: %+v, %v", a.st, a.err)
		}
		if d := a.at.Sub(recorded); d > time.Second {
			t.Errorf("answered %s after the record", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held request was not answered when its path was recorded")
	}
	if h.tracker.Has(p["c"]) {
		t.Error("the recorder did not forget c's plan")
	}
}

func TestWaitShutdownAnswers(t *testing.T) {
	h, _, p := waitFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	first, _ := h.Wait(ctx, hook.Peer{}, hook.WaitRequest{Paths: []string{p["c"]}})
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	st, err := h.Wait(ctx, hook.Peer{}, hook.WaitRequest{Paths: []string{p["c"]}, Hold: 20 * time.Second, Since: first.Version})
	if err != nil || st.Done || time.Since(start) > 5*time.Second {
		t.Fatalf("answer on shutdown after %s: %+v, %v", time.Since(start), st, err)
	}
}

func TestWaitPriorityForWritersOnly(t *testing.T) {
	h, _, p := waitFixture(t)
	ctx := context.Background()
	if _, err := h.q.Enqueue(ctx, []string{p["d"]}); err != nil {
		t.Fatal(err)
	}
	st, err := h.Wait(ctx, hook.Peer{UID: 1000}, hook.WaitRequest{Paths: []string{p["d"]}})
	if err != nil || st.Urgent || h.q.IsUrgent(p["d"]) {
		t.Fatalf("read-only waiter: urgent %v, marked %v (%v)", st.Urgent, h.q.IsUrgent(p["d"]), err)
	}
	st, err = h.Wait(ctx, hook.Peer{UID: 0}, hook.WaitRequest{Paths: []string{p["d"]}})
	if err != nil || !st.Urgent || st.Paths[0].State != hook.WaitPending {
		t.Fatalf("root waiter: %+v, %v", st, err)
	}
	// The mark outlives the request, to bridge the gap to the next poll.
	if !h.q.IsUrgent(p["d"]) {
		t.Error("d not marked urgent after root's wait")
	}
	items, err := h.q.ClaimUrgent(10)
	if err != nil || len(items) != 1 || items[0].Path != p["d"] {
		t.Errorf("ClaimUrgent: %v, %v", items, err)
	}
}

func TestWaitRefusesNonStorePaths(t *testing.T) {
	h, _, p := waitFixture(t)
	_, err := h.Wait(context.Background(), hook.Peer{}, hook.WaitRequest{Paths: []string{p["a"], "/etc/passwd"}})
	var refused *hook.RefusedError
	if !errors.As(err, &refused) || refused.Total != 2 || len(refused.Refused) != 1 || refused.Refused[0].Path != "/etc/passwd" {
		t.Fatalf("wait with /etc/passwd: %v", err)
	}
}

func TestWaitersWakeOnlyTheirPaths(t *testing.T) {
	w := newWaiters()
	ch1, stop1 := w.watch([]string{"a", "b"})
	ch2, stop2 := w.watch([]string{"b"})
	w.changed("a")
	w.changed("a") // coalesced
	select {
	case <-ch1:
	default:
		t.Error("watcher of a not woken")
	}
	select {
	case <-ch2:
		t.Error("watcher of b woken by a")
	default:
	}
	stop1()
	stop2()
	var mu sync.Mutex
	mu.Lock()
	n := len(w.byPath)
	mu.Unlock()
	if n != 0 {
		t.Errorf("%d paths still watched after stop", n)
	}
}
