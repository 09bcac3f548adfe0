package daemon

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/uploader"
)

// batchFunc is an uploader that runs fn for each batch.
type batchFunc func(ctx context.Context, roots []string, done func(string, uploader.Result, error))

func (f batchFunc) UploadBatch(ctx context.Context, roots []string, done func(string, uploader.Result, error)) {
	f(ctx, roots, done)
}

func (f batchFunc) PublishBuild(ctx context.Context, drv string) (uploader.BuildResult, error) {
	return uploader.BuildResult{}, fmt.Errorf("unexpected build %s", drv)
}

// outcomes collects what a pool hands to its recorder.
type outcomes struct {
	mu  sync.Mutex
	got map[string]int
	ctx map[string]error // the work context's error at record time
}

func (o *outcomes) record(ctx context.Context, oc outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.got == nil {
		o.got, o.ctx = map[string]int{}, map[string]error{}
	}
	o.got[oc.item.Path]++
	o.ctx[oc.item.Path] = ctx.Err()
}

func (o *outcomes) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.got)
}

func TestPoolRunsEveryItemOnceWithinWorkers(t *testing.T) {
	q := openQueue(t, 3)
	const n, workers = 50, 3
	var mu sync.Mutex
	running, most, batches := 0, 0, 0
	up := batchFunc(func(ctx context.Context, roots []string, done func(string, uploader.Result, error)) {
		mu.Lock()
		running++
		batches++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		for _, r := range roots {
			done(r, uploader.Result{Uploaded: 1}, nil)
		}
		mu.Lock()
		running--
		mu.Unlock()
	})
	var rec outcomes
	p := newPool(q, up, rec.record, Config{Workers: workers, BatchSize: 4, ShutdownGrace: time.Second}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { defer close(finished); p.run(ctx) }()
	var paths []string
	for i := range n {
		paths = append(paths, fmt.Sprintf("/nix/store/p%02d", i))
	}
	if _, err := q.Enqueue(ctx, paths); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rec.count() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-finished
	for _, path := range paths {
		if rec.got[path] != 1 {
			t.Errorf("%s recorded %d times, want once", path, rec.got[path])
		}
	}
	if most > workers {
		t.Errorf("%d batches ran at once with %d workers", most, workers)
	}
	if batches > n/2 {
		t.Errorf("%d items took %d batches of at most 4", n, batches)
	}
	if len(p.activeItems()) != 0 {
		t.Errorf("items still listed as active: %v", p.activeItems())
	}
}

// On shutdown running uploads get the grace period; after it their context
// is cancelled, and the recorder sees the cancellation.
func TestPoolShutdownGrace(t *testing.T) {
	q := openQueue(t, 3)
	started := make(chan struct{})
	up := batchFunc(func(ctx context.Context, roots []string, done func(string, uploader.Result, error)) {
		close(started)
		<-ctx.Done()
		for _, r := range roots {
			done(r, uploader.Result{}, ctx.Err())
		}
	})
	var rec outcomes
	p := newPool(q, up, rec.record, Config{Workers: 2, BatchSize: 8, ShutdownGrace: 100 * time.Millisecond}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { defer close(finished); p.run(ctx) }()
	if _, err := q.Enqueue(ctx, []string{"/nix/store/slow"}); err != nil {
		t.Fatal(err)
	}
	<-started
	if act := p.activeItems(); len(act) != 1 || act[0].Path != "/nix/store/slow" || act[0].LeasedAt.IsZero() {
		t.Fatalf("active items %+v", act)
	}
	begin := time.Now()
	cancel()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("pool did not stop after its grace")
	}
	if took := time.Since(begin); took < 100*time.Millisecond {
		t.Errorf("pool stopped after %v, before its grace", took)
	}
	if rec.got["/nix/store/slow"] != 1 || rec.ctx["/nix/store/slow"] == nil {
		t.Fatalf("recorded %v with context errors %v; want one outcome with a cancelled context", rec.got, rec.ctx)
	}
	// The recorder would have released the lease; do what it does.
	if err := q.Release([]string{"/nix/store/slow"}); err != nil {
		t.Fatal(err)
	}
}

// TestPoolUrgentLane: with the only worker stuck on a backlog batch, an
// item someone waits for is still claimed and uploaded at once, under
// uploader.Urgent, and the backlog still finishes.
func TestPoolUrgentLane(t *testing.T) {
	q := openQueue(t, 3)
	release := make(chan struct{})
	var mu sync.Mutex
	urgentCtx := map[string]bool{}
	up := batchFunc(func(ctx context.Context, roots []string, done func(string, uploader.Result, error)) {
		mu.Lock()
		for _, r := range roots {
			urgentCtx[r] = uploader.IsUrgent(ctx)
		}
		mu.Unlock()
		if !uploader.IsUrgent(ctx) {
			<-release
		}
		for _, r := range roots {
			done(r, uploader.Result{Uploaded: 1}, nil)
		}
	})
	var rec outcomes
	p := newPool(q, up, rec.record, Config{Workers: 1, BatchSize: 4, ShutdownGrace: time.Second}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { defer close(finished); p.run(ctx) }()
	defer func() { cancel(); <-finished }()

	var backlog []string
	for i := range 8 {
		backlog = append(backlog, fmt.Sprintf("/nix/store/backlog-%d", i))
	}
	if _, err := q.Enqueue(ctx, backlog); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.inFlight() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	mine := "/nix/store/mine"
	defer q.Prioritize([]string{mine})()
	if _, err := q.Enqueue(ctx, []string{mine}); err != nil {
		t.Fatal(err)
	}
	for rec.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	rec.mu.Lock()
	got := rec.got[mine]
	n := len(rec.got)
	rec.mu.Unlock()
	if got != 1 || n != 1 {
		t.Fatalf("while the backlog is stuck: recorded %v, want only %s", rec.got, mine)
	}
	mu.Lock()
	if !urgentCtx[mine] || urgentCtx[backlog[0]] {
		t.Errorf("urgent contexts %v: want only %s urgent", urgentCtx, mine)
	}
	mu.Unlock()
	close(release)
	for rec.count() < len(backlog)+1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := rec.count(); n != len(backlog)+1 {
		t.Errorf("recorded %d items, want all %d", n, len(backlog)+1)
	}
}
