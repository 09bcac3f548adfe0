package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/queue"
)

// maxListed bounds the failures and history entries one status reply lists.
const maxListed = 200

// Status assembles the queue's state, the workers' items and live uploads.
func (h *handler) Status(ctx context.Context) (*hook.Status, error) {
	st, err := h.q.Stats()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	out := &hook.Status{
		Store:         h.storeName,
		PublicKey:     h.publicKey,
		Pending:       st.Pending,
		InFlight:      st.Leased,
		Failed:        st.Failed,
		Uploaded:      st.Uploaded,
		UploadedBytes: st.UploadedBytes,
		Skipped:       st.Skipped,
		Dropped:       st.Dropped,
		Completed:     st.Completed,
		Excluded:      st.Excluded,
		HeldBack:      st.HeldBack,
		Realisations:  st.Realisations,
		Logs:          st.Logs,
		Failures:      []hook.Failure{},
		Active:        []hook.ActiveItem{},
		Uploading:     []hook.Transfer{},
	}
	if files, err := hook.ListSpool(hook.SpoolDir(h.stateDir)); err == nil {
		out.Spooled = len(files)
	}
	if err := hook.CheckSpoolDir(hook.SpoolDir(h.stateDir)); err != nil {
		out.SpoolProblem = "not read: " + err.Error()
	}
	out.SpoolBad = hook.CountBadSpool(hook.SpoolDir(h.stateDir))
	if !st.OldestPending.IsZero() {
		out.OldestPendingSeconds = time.Since(st.OldestPending).Seconds()
	}
	for _, t := range h.transfers() {
		out.Uploading = append(out.Uploading, hook.Transfer{Path: t.Path, NarSize: t.NarSize, Read: t.Read, Started: t.Started})
	}
	out.ThroughputBytesSec = h.meter.perSecond()
	if h.lastGC != nil {
		out.LastGC = h.lastGC()
	}
	failed, err := h.q.Items(queue.Failed, maxListed)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	for _, it := range failed {
		out.Failures = append(out.Failures, hook.Failure{Path: it.Path, Attempts: it.Attempts, LastError: it.LastError})
	}
	for _, it := range h.active() {
		out.Active = append(out.Active, hook.ActiveItem{Path: it.Path, Attempts: it.Attempts, Since: it.LeasedAt})
	}
	hist, err := h.q.History(20)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	for _, h := range hist {
		res := "uploaded"
		switch {
		case h.Outcome.Dropped:
			res = "dropped"
		case h.Outcome.HeldBy != "":
			res = "filtered"
		}
		out.Recent = append(out.Recent, hook.HistoryEntry{Path: h.Path, Finished: h.Finished, Result: res,
			Uploaded: h.Outcome.Uploaded, Skipped: h.Outcome.Skipped, Bytes: h.Outcome.Bytes,
			Excluded: h.Outcome.Excluded, HeldBack: h.Outcome.HeldBack, Detail: h.Outcome.Detail})
	}
	return out, nil
}
