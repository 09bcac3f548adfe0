package queue

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// writeReq is one request to the group committer. apply runs inside the
// shared write transaction; it must reset any result it produces because a
// failed group is retried request by request.
type writeReq struct {
	apply func(tx *bolt.Tx) error
	wake  bool // set by apply: signal Notify after the commit
	err   error
	done  chan struct{} // closed once err (and apply's results) are final
}

// submit hands r to the committer. It fails with ErrClosed after Close;
// a request accepted before Close is still committed.
func (q *Queue) submit(r *writeReq) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	q.pmu.Lock()
	q.waiting = append(q.waiting, r)
	q.pmu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return nil
}

// write submits apply and waits for its commit, without cancellation.
func (q *Queue) write(op string, apply func(tx *bolt.Tx) error) error {
	r := &writeReq{apply: apply, done: make(chan struct{})}
	if err := q.submit(r); err != nil {
		return err
	}
	<-r.done
	if r.err != nil {
		return fmt.Errorf("queue: %s: %w", op, r.err)
	}
	return nil
}

// run is the committer goroutine. Each round takes every request that is
// waiting and commits them in one transaction; requests that arrive during
// the commit's fsync wait for the next round. There is no timer: an idle
// queue commits a lone request immediately.
func (q *Queue) run() {
	defer close(q.stopped)
	for {
		select {
		case <-q.kick:
			q.commitWaiting()
		case <-q.stopping:
			// submit cannot add more once closed is set, so this drains all.
			q.commitWaiting()
			return
		}
	}
}

func (q *Queue) commitWaiting() {
	for {
		q.pmu.Lock()
		batch := q.waiting
		q.waiting = nil
		q.pmu.Unlock()
		if len(batch) == 0 {
			return
		}
		q.commitBatch(batch)
	}
}

func (q *Queue) commitBatch(batch []*writeReq) {
	err := q.db.Update(func(tx *bolt.Tx) error {
		changed := false
		for _, r := range batch {
			r.wake = false
			switch err := r.apply(tx); {
			case errors.Is(err, errNoChange):
			case err != nil:
				return err
			default:
				changed = true
			}
		}
		if !changed {
			return errNoChange // nothing to write: skip the commit and its fsync
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		for _, r := range batch {
			close(r.done)
		}
		return
	}
	if err != nil && len(batch) > 1 {
		// One request's failure must not fail the others: commit each alone.
		for _, r := range batch {
			q.commitBatch([]*writeReq{r})
		}
		return
	}
	wake := false
	if err == nil {
		q.commits.Add(1)
		for _, r := range batch {
			wake = wake || r.wake
		}
	}
	// Signal before waking the callers, so that a caller returning from
	// Enqueue can rely on the notification having been sent.
	if wake {
		q.signal()
	}
	for _, r := range batch {
		r.err = err
		close(r.done)
	}
}
