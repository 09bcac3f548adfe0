package daemon

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/progress"
	"github.com/nixs3q/nixs3q/queue"
)

// markLinger is how long a waiter's priority marks outlive its request, so
// that they bridge the gap to the waiter's next long poll; a waiter that
// went away stops being served first after this long.
const markLinger = 10 * time.Second

// unknownReason is what wait says of a path the daemon knows nothing of.
const unknownReason = "not queued, and not among the recently finished paths: queue it with 'nixs3q push --wait PATH'"

// waiters wakes the wait requests that follow a path when its queue item's
// outcome is recorded. It is safe for concurrent use.
type waiters struct {
	mu     sync.Mutex
	byPath map[string]map[chan struct{}]struct{}
}

func newWaiters() *waiters { return &waiters{byPath: map[string]map[chan struct{}]struct{}{}} }

// watch returns a channel that receives a value (coalesced) whenever the
// outcome of one of paths is recorded, until stop is called.
func (w *waiters) watch(paths []string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range paths {
		if w.byPath[p] == nil {
			w.byPath[p] = map[chan struct{}]struct{}{}
		}
		w.byPath[p][ch] = struct{}{}
	}
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, p := range paths {
			delete(w.byPath[p], ch)
			if len(w.byPath[p]) == 0 {
				delete(w.byPath, p)
			}
		}
	}
}

// watched reports whether anyone waits for path.
func (w *waiters) watched(path string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byPath[path]) > 0
}

// changed wakes the watchers of path; it never blocks.
func (w *waiters) changed(path string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.byPath[path] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Wait answers a long poll about the closures of req.Paths: at once when
// they are all finished or their state differs from req.Since, else when
// one of them is recorded, req.Hold passes or the daemon shuts down. A
// peer that may change the queue gets its paths served first (the queue's
// priority lane) while it keeps asking.
func (h *handler) Wait(ctx context.Context, p hook.Peer, req hook.WaitRequest) (*hook.WaitState, error) {
	var refused []hook.Refusal
	var paths []string
	for _, path := range req.Paths {
		if _, err := nix.ParseStorePath(h.storeDir, path); err != nil {
			refused = append(refused, hook.Refusal{Path: path, Reason: err.Error()})
		} else if !slices.Contains(paths, path) {
			paths = append(paths, path)
		}
	}
	if len(refused) > 0 {
		return nil, &hook.RefusedError{Refused: refused, Total: len(req.Paths)}
	}
	urgent := h.Access(p) == hook.ReadWrite
	if urgent {
		unmark := h.q.Prioritize(paths)
		defer time.AfterFunc(markLinger, unmark)
	}
	woken, stop := h.waiters.watch(paths)
	defer stop()
	timer := time.NewTimer(req.Hold)
	defer timer.Stop()
	for {
		st, err := h.waitState(paths)
		if err != nil {
			return nil, err
		}
		st.Urgent = urgent
		if urgent && h.expedite != nil {
			// The paths may have been claimed, and their uploads begun,
			// before this waiter marked them: those uploads become urgent
			// too. Repeated at every wake-up, which also covers an upload
			// that began after the previous one.
			h.expedite(paths)
		}
		if st.Done || st.Version != req.Since || req.Hold <= 0 {
			return st, nil
		}
		select {
		case <-woken:
		case <-timer.C:
			req.Hold = 0 // answer with what is there now
		case <-ctx.Done():
			return st, nil
		}
	}
}

// waitState reads where paths stand from the queue (one snapshot), the
// spool and the uploads in flight.
func (h *handler) waitState(paths []string) (*hook.WaitState, error) {
	states, err := h.q.States(paths)
	if err != nil {
		return nil, err
	}
	spooled := -1 // not counted yet
	var spoolErr error
	st := &hook.WaitState{Done: true, Paths: make([]hook.WaitPath, 0, len(paths))}
	pr := &st.Progress
	var uploading []string
	for _, s := range states {
		wp := hook.WaitPath{Path: s.Path}
		switch {
		case s.Queued:
			it := s.Item
			wp.Attempts = it.Attempts
			switch it.State {
			case queue.Pending:
				wp.State = hook.WaitPending
				if it.Attempts > 0 {
					wp.Reason = it.LastError
				}
			case queue.Leased:
				wp.State = hook.WaitUploading
				uploading = append(uploading, s.Path)
			default:
				wp.State, wp.Reason = hook.WaitFailed, it.LastError
			}
		case s.Finished:
			o := s.Entry.Outcome
			if o.Dropped {
				wp.State, wp.Reason = hook.WaitDropped, o.Detail
				break
			}
			wp.State, wp.Uploaded, wp.Skipped = hook.WaitPublished, o.Uploaded, o.Skipped
			pr.PathsTotal += o.Uploaded + o.Skipped
			pr.Uploaded += o.Uploaded
			pr.Present += o.Skipped
			pr.BytesTotal += o.NarBytes
			pr.BytesDone += o.NarBytes
		default:
			if spooled < 0 {
				spooled = 0
				dir := hook.SpoolDir(h.stateDir)
				// A spool the daemon refuses to read (see ingestSpool)
				// holds nothing worth waiting for.
				if spoolErr = hook.CheckSpoolDir(dir); spoolErr == nil {
					if files, err := hook.ListSpool(dir); err == nil {
						spooled = len(files)
					}
				}
			}
			switch {
			case spooled > 0:
				wp.State = hook.WaitSpooled
			case spoolErr != nil:
				wp.State, wp.Reason = hook.WaitUnknown, unknownReason+"; the spool is not read: "+spoolErr.Error()
			default:
				wp.State, wp.Reason = hook.WaitUnknown, unknownReason
			}
		}
		switch wp.State {
		case hook.WaitFailed, hook.WaitDropped, hook.WaitUnknown:
			pr.PathsTotal++
			pr.Failed++
		case hook.WaitPending, hook.WaitSpooled:
			pr.PathsTotal++
		}
		if !wp.Finished() {
			st.Done = false
		}
		st.Paths = append(st.Paths, wp)
	}
	h.addInFlight(pr, uploading)
	st.Version = version(st.Paths)
	return st, nil
}

// addInFlight adds the closures of the roots being uploaded, as far as the
// uploader has planned them, to pr.
func (h *handler) addInFlight(pr *hook.WaitProgress, roots []string) {
	var planned []string
	for _, r := range roots {
		if h.tracker != nil && h.tracker.Has(r) {
			planned = append(planned, r)
		} else {
			pr.PathsTotal++ // its closure is being read
		}
	}
	if len(planned) == 0 {
		return
	}
	var active []progress.Transfer
	for _, t := range h.transfers() {
		active = append(active, progress.Transfer{Path: t.Path, Size: int64(t.NarSize), Done: t.Read})
	}
	s := h.tracker.Snapshot(planned, active)
	pr.PathsTotal += s.PathsTotal
	pr.Uploaded += s.Uploaded
	pr.Present += s.Present
	pr.Failed += s.Failed
	pr.BytesTotal += s.BytesTotal
	pr.BytesDone += s.BytesDone
	if s.Largest.Path != "" {
		for _, t := range h.transfers() {
			if t.Path == s.Largest.Path {
				pr.Largest = &hook.Transfer{Path: t.Path, NarSize: t.NarSize, Read: t.Read, Started: t.Started}
			}
		}
	}
}

// version fingerprints the paths' states; it is never 0, which stands for
// no previous answer.
func version(paths []hook.WaitPath) uint64 {
	h := fnv.New64a()
	var n [8]byte
	for _, p := range paths {
		h.Write([]byte(p.Path))
		h.Write([]byte{0})
		h.Write([]byte(p.State))
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(n[:], uint64(p.Attempts))
		h.Write(n[:])
	}
	return max(h.Sum64(), 1)
}
