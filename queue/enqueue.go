package queue

import (
	"context"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// EnqueueResult counts what one Enqueue call did with its distinct paths.
type EnqueueResult struct {
	Added         int // new paths, pending and due now
	AlreadyQueued int // paths already pending or leased, left untouched
	Requeued      int // failed paths put back to pending with attempts reset
}

// Enqueue durably records paths. It returns only after the transaction
// holding them is committed and fsynced; all paths of one call are in the
// same transaction, so either all of them are recorded or none.
//
// Concurrent calls are group-committed: one committer goroutine takes every
// waiting request into a single transaction (one fsync) and then wakes all
// callers. Requests arriving during a commit go into the next one; there is
// no added delay.
//
// Enqueue is idempotent per path: pending or leased paths are left
// untouched, a failed path goes back to pending with attempts reset, and a
// new path becomes pending, due now. A path repeated within paths counts
// once. An invalid path (empty, longer than 4096 bytes, or containing NUL)
// fails the whole call with ErrInvalidPath before anything is written.
//
// Cancelling ctx stops the wait but not the commit, which may still happen.
func (q *Queue) Enqueue(ctx context.Context, paths []string) (EnqueueResult, error) {
	for _, p := range paths {
		if p == "" || len(p) > maxPathLen || strings.IndexByte(p, 0) >= 0 {
			return EnqueueResult{}, fmt.Errorf("queue: enqueue %q: %w", p, ErrInvalidPath)
		}
	}
	if err := ctx.Err(); err != nil {
		return EnqueueResult{}, fmt.Errorf("queue: enqueue: %w", err)
	}
	var res EnqueueResult
	r := &writeReq{done: make(chan struct{})}
	r.apply = func(tx *bolt.Tx) error {
		var err error
		res, err = q.enqueueTx(tx, paths)
		r.wake = res.Added+res.Requeued > 0
		return err
	}
	if err := q.submit(r); err != nil {
		return EnqueueResult{}, err
	}
	select {
	case <-r.done:
		if r.err != nil {
			return EnqueueResult{}, fmt.Errorf("queue: enqueue: %w", r.err)
		}
		return res, nil
	case <-ctx.Done():
		return EnqueueResult{}, fmt.Errorf("queue: enqueue: %w", ctx.Err())
	}
}

func (q *Queue) enqueueTx(tx *bolt.Tx, paths []string) (EnqueueResult, error) {
	var res EnqueueResult
	now := q.cfg.Now()
	d := deltas{}
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		prev, ok, err := getItem(tx, p)
		if err != nil {
			return res, err
		}
		switch {
		case !ok:
			res.Added++
			if err := store(tx, nil, Item{Path: p, State: Pending, EnqueuedAt: now, NextAttempt: now}, d); err != nil {
				return res, err
			}
		case prev.State == Failed:
			res.Requeued++
			if err := store(tx, &prev, requeued(prev, now), d); err != nil {
				return res, err
			}
		default:
			res.AlreadyQueued++
		}
	}
	return res, d.apply(tx)
}

// requeued is a failed item brought back: pending, due now, attempts reset.
// LastError is kept for diagnosis until the item leaves the queue.
func requeued(it Item, now time.Time) Item {
	it.State = Pending
	it.Attempts = 0
	it.EnqueuedAt = now
	it.NextAttempt = now
	it.LeasedAt = time.Time{}
	it.FailedAt = time.Time{}
	it.Permanent = false
	return it
}
