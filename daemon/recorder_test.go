package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/queue"
	"github.com/nixs3q/nixs3q/uploader"
)

// openQueue opens a queue in a temporary directory whose invariants are
// checked when the test ends.
func openQueue(t *testing.T, maxAttempts int) *queue.Queue {
	t.Helper()
	q, err := queue.Open(queue.Config{Path: filepath.Join(t.TempDir(), "queue.db"), MaxAttempts: maxAttempts,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}, zaptest.NewLogger(t).Named("queue"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Check(); err != nil {
			t.Errorf("queue invariants: %v", err)
		}
		q.Close()
	})
	return q
}

// claimOne queues path and leases it, as the pool does before an upload.
func claimOne(t *testing.T, q *queue.Queue, path string) queue.Item {
	t.Helper()
	if _, err := q.Enqueue(context.Background(), []string{path}); err != nil {
		t.Fatal(err)
	}
	items, err := q.Claim(1)
	if err != nil || len(items) != 1 || items[0].Path != path {
		t.Fatalf("claim: %+v, %v", items, err)
	}
	return items[0]
}

func TestRecorderOutcomes(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		res      uploader.Result
		err      error
		gone     bool        // the item left the queue
		state    queue.State // otherwise
		attempts int
		bytes    float64 // throughput counted over the 30s window
		revived  int     // RetryTransient calls
	}{
		{"uploaded", context.Background(), uploader.Result{Uploaded: 2, Bytes: 300}, nil, true, "", 0, 10, 1},
		{"gone", context.Background(), uploader.Result{}, fmt.Errorf("closure: %w", uploader.ErrPathGone), true, "", 0, 0, 0},
		{"shutdown", cancelled, uploader.Result{}, context.Canceled, false, queue.Pending, 0, 0, 0},
		{"transient", context.Background(), uploader.Result{}, errors.New("connection reset by peer"), false, queue.Pending, 1, 0, 0},
		{"permanent", context.Background(), uploader.Result{}, fmt.Errorf("nar: %w", uploader.ErrHashMismatch), false, queue.Failed, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openQueue(t, 3)
			rv := &fakeReviver{}
			rec := &recorder{q: q, meter: newRateMeter(30 * time.Second), log: zaptest.NewLogger(t),
				health: newCacheHealth(&fakeCache{results: []error{nil}}, rv, zaptest.NewLogger(t))}
			it := claimOne(t, q, "/nix/store/"+tc.name)
			rec.record(tc.ctx, outcome{item: it, res: tc.res, err: tc.err, took: time.Millisecond})
			got, ok, err := q.Get(it.Path)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.gone && ok:
				t.Fatalf("item still queued: %+v", got)
			case !tc.gone && (!ok || got.State != tc.state || got.Attempts != tc.attempts):
				t.Fatalf("item %+v (queued %v), want state %v after %d attempt(s)", got, ok, tc.state, tc.attempts)
			}
			if r := rec.meter.perSecond(); r != tc.bytes {
				t.Errorf("throughput %v B/s, want %v", r, tc.bytes)
			}
			if rv.count() != tc.revived {
				t.Errorf("%d revivals, want %d", rv.count(), tc.revived)
			}
		})
	}
}

// A transient failure that exhausts the attempts marks an outage, so that
// the next success revives it; a permanent one does not.
func TestRecorderMarksOutage(t *testing.T) {
	q := openQueue(t, 1)
	rv := &fakeReviver{}
	rec := &recorder{q: q, meter: newRateMeter(time.Second), log: zaptest.NewLogger(t),
		health: newCacheHealth(&fakeCache{results: []error{nil}}, rv, zaptest.NewLogger(t))}
	ok := func(p string) {
		rec.record(context.Background(), outcome{item: claimOne(t, q, p), res: uploader.Result{Uploaded: 1}})
	}
	fail := func(p string, err error) {
		rec.record(context.Background(), outcome{item: claimOne(t, q, p), err: err})
	}
	ok("/nix/store/a")
	fail("/nix/store/b", fmt.Errorf("nar: %w", uploader.ErrHashMismatch))
	ok("/nix/store/c")
	if rv.count() != 1 {
		t.Fatalf("%d revivals after a permanent failure, want only the start-up one", rv.count())
	}
	fail("/nix/store/d", errors.New("dial tcp 127.0.0.1:9000: connection refused"))
	ok("/nix/store/e")
	if rv.count() != 2 {
		t.Fatalf("%d revivals after an outage, want 2", rv.count())
	}
}

// TestRecorderFiltersAndBuilds checks what the queue records for items the
// filters keep out and for builds: each filtered item counts once, with
// what held it back, and a build's realisations and log are counted.
func TestRecorderFiltersAndBuilds(t *testing.T) {
	q := openQueue(t, 3)
	rec := &recorder{q: q, meter: newRateMeter(30 * time.Second), log: zaptest.NewLogger(t),
		health: newCacheHealth(&fakeCache{results: []error{nil}}, &fakeReviver{}, zaptest.NewLogger(t))}
	secret, user, drv := "/nix/store/s-secret", "/nix/store/u-user", "/nix/store/d-x.drv^*"
	for _, o := range []outcome{
		{item: claimOne(t, q, secret), res: uploader.Result{Excluded: 1, HeldBy: secret}},
		{item: claimOne(t, q, user), res: uploader.Result{Excluded: 1, HeldBack: 3, HeldBy: secret}},
		{item: claimOne(t, q, drv), res: uploader.Result{Uploaded: 1}, build: &uploader.BuildResult{Realisations: 2, Log: uploader.LogUploaded}},
	} {
		rec.record(context.Background(), o)
	}
	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Excluded != 1 || st.HeldBack != 1 || st.Realisations != 2 || st.Logs != 1 || st.Completed != 3 || st.Uploaded != 1 {
		t.Errorf("stats %+v, want 1 excluded, 1 held back, 2 realisations, 1 log, 3 completed", st)
	}
	hist, err := q.History(0)
	if err != nil {
		t.Fatal(err)
	}
	details := map[string]string{}
	for _, h := range hist {
		details[h.Path] = h.Outcome.Detail
	}
	if d := details[user]; d != "held back by "+secret+", which a filter excludes: not published" {
		t.Errorf("detail of %s: %q", user, d)
	}
	if d := details[secret]; d != "excluded by a filter: not published" {
		t.Errorf("detail of %s: %q", secret, d)
	}
	if d := details[drv]; d != "log uploaded" {
		t.Errorf("detail of %s: %q", drv, d)
	}
}
