package daemon

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/queue"
)

// maxListed bounds the failures and history entries one status reply lists.
const maxListed = 200

// status assembles the queue's state, the workers' items and live uploads.
func (d *Daemon) status() (*hook.Status, error) {
	st, err := d.q.Stats()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	out := &hook.Status{
		Store:         d.cfg.StoreName,
		Pending:       st.Pending,
		InFlight:      st.Leased,
		Failed:        st.Failed,
		Uploaded:      st.Uploaded,
		UploadedBytes: st.UploadedBytes,
		Skipped:       st.Skipped,
		Dropped:       st.Dropped,
		Completed:     st.Completed,
		Failures:      []hook.Failure{},
		Active:        []hook.ActiveItem{},
		Uploading:     []hook.Transfer{},
	}
	if files, err := hook.ListSpool(hook.SpoolDir(d.cfg.StateDir)); err == nil {
		out.Spooled = len(files)
	}
	if !st.OldestPending.IsZero() {
		out.OldestPendingSeconds = time.Since(st.OldestPending).Seconds()
	}
	for _, t := range d.up.Active() {
		out.Uploading = append(out.Uploading, hook.Transfer{Path: t.Path, NarSize: t.NarSize, Read: t.Read, Started: t.Started})
	}
	out.ThroughputBytesSec = d.rate.perSecond()
	failed, err := d.q.Items(queue.Failed, maxListed)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	for _, it := range failed {
		out.Failures = append(out.Failures, hook.Failure{Path: it.Path, Attempts: it.Attempts, LastError: it.LastError})
	}
	d.mu.Lock()
	for _, it := range d.active {
		out.Active = append(out.Active, hook.ActiveItem{Path: it.Path, Attempts: it.Attempts, Since: it.LeasedAt})
	}
	d.mu.Unlock()
	sort.Slice(out.Active, func(i, j int) bool { return out.Active[i].Since.Before(out.Active[j].Since) })
	hist, err := d.q.History(20)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	for _, h := range hist {
		res := "uploaded"
		if h.Outcome.Dropped {
			res = "dropped"
		}
		out.Recent = append(out.Recent, hook.HistoryEntry{Path: h.Path, Finished: h.Finished, Result: res,
			Uploaded: h.Outcome.Uploaded, Skipped: h.Outcome.Skipped, Bytes: h.Outcome.Bytes})
	}
	return out, nil
}

// rateMeter measures bytes per second over a sliding window.
type rateMeter struct {
	window time.Duration
	mu     sync.Mutex
	events []rateEvent
}

type rateEvent struct {
	at    time.Time
	bytes int64
}

func newRateMeter(window time.Duration) *rateMeter { return &rateMeter{window: window} }

func (r *rateMeter) add(n int64) {
	if n <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, rateEvent{time.Now(), n})
	r.trim(time.Now())
}

func (r *rateMeter) trim(now time.Time) {
	i := 0
	for i < len(r.events) && now.Sub(r.events[i].at) > r.window {
		i++
	}
	r.events = r.events[i:]
}

func (r *rateMeter) perSecond() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.trim(now)
	var sum int64
	for _, e := range r.events {
		sum += e.bytes
	}
	return float64(sum) / r.window.Seconds()
}
