package queue

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Claim leases up to max due pending items (NextAttempt not after now) and
// returns them. Items marked by Prioritize come first, earliest due first;
// the rest come earliest due first from the due index. When both kinds are
// due, at least a quarter of the claim (at least one item; for a claim of
// one item, every fourth claim) goes to the unmarked backlog, so that
// waited-for work never starves it. The leases are committed and fsynced
// before Claim returns; a lease lasts until Complete, Fail or Release, or
// until the next Open of the file (crash recovery). Claim reads the due
// index and the marked items only, never the whole queue. When nothing is
// due it returns no items and writes nothing.
func (q *Queue) Claim(max int) ([]Item, error) {
	return q.claim(max, false)
}

// ClaimUrgent is Claim restricted to the items marked by Prioritize: a
// worker kept free for waited-for work calls it, so that such work never
// waits for a worker busy with the backlog.
func (q *Queue) ClaimUrgent(max int) ([]Item, error) {
	if q.Urgent() == 0 {
		return nil, nil // no transaction when nobody waits
	}
	return q.claim(max, true)
}

func (q *Queue) claim(max int, urgentOnly bool) ([]Item, error) {
	if max <= 0 {
		return nil, nil
	}
	var out []Item
	err := q.update("claim", func(tx *bolt.Tx) error {
		out = out[:0]
		now := q.cfg.Now()
		paths, err := q.pick(tx, max, urgentOnly)
		if err != nil {
			return err
		}
		if len(paths) == 0 {
			return errNoChange
		}
		d := deltas{}
		for _, p := range paths {
			prev, ok, err := getItem(tx, p)
			if err != nil {
				return err
			}
			if !ok || prev.State != Pending {
				return fmt.Errorf("due index names %s, which is not pending", p)
			}
			it := prev
			it.State, it.LeasedAt = Leased, now
			if err := store(tx, &prev, it, d); err != nil {
				return err
			}
			out = append(out, it)
		}
		return d.apply(tx)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// NextDue returns the earliest NextAttempt among pending items, which may be
// in the past, and false when nothing is pending (or the queue is closed).
func (q *Queue) NextDue() (time.Time, bool) {
	var due time.Time
	var ok bool
	_ = q.view("next due", func(tx *bolt.Tx) error {
		k, _ := tx.Bucket([]byte(bDue)).Cursor().First()
		if k == nil {
			return nil
		}
		t, _, err := parseTimeKey(k)
		due, ok = t, err == nil
		return nil
	})
	return due, ok
}

// FailOptions modifies Fail.
type FailOptions struct {
	// Permanent moves the item to the failed list at once.
	Permanent bool
	// RetryAfter is a floor for the delay before the next attempt, e.g.
	// from a server's Retry-After.
	RetryAfter time.Duration
}

// Fail records a failed attempt of a leased path: Attempts grows by one and
// LastError becomes cause (truncated to 4096 bytes). If opt.Permanent or
// Attempts reached MaxAttempts the item moves to the failed list (counted in
// Stats.FailedTotal); otherwise it is pending again, due at
// now + max(opt.RetryAfter, backoff), where backoff is drawn uniformly from
// [b/2, b] with b = min(BackoffMax, BackoffBase·2^(Attempts-1)). The change
// is fsynced before Fail returns the updated item. A path that is not leased
// gives an error wrapping ErrNotLeased and changes nothing.
func (q *Queue) Fail(path string, cause string, opt FailOptions) (Item, error) {
	var out Item
	err := q.update("fail "+path, func(tx *bolt.Tx) error {
		prev, ok, err := getItem(tx, path)
		if err != nil {
			return err
		}
		if !ok || prev.State != Leased {
			return ErrNotLeased
		}
		now := q.cfg.Now()
		it := prev
		it.Attempts++
		it.LastError = truncate(cause, maxErrorLen)
		it.LeasedAt = time.Time{}
		it.FailedAt = now
		it.Permanent = opt.Permanent
		d := deltas{}
		if opt.Permanent || it.Attempts >= q.cfg.MaxAttempts {
			it.State = Failed
			d[cFailedTotal]++
		} else {
			it.State = Pending
			it.NextAttempt = now.Add(max(opt.RetryAfter, q.backoff(it.Attempts)))
		}
		if err := store(tx, &prev, it, d); err != nil {
			return err
		}
		out = it
		return d.apply(tx)
	})
	if err != nil {
		return Item{}, err
	}
	if out.State == Pending {
		q.signal()
	}
	return out, nil
}

// maxErrorLen bounds the LastError kept per item, so a verbose error cannot
// bloat the file.
const maxErrorLen = 4096

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// backoff is the jittered delay after the given number of failed attempts.
func (q *Queue) backoff(attempts int) time.Duration {
	b, limit := q.cfg.BackoffBase, q.cfg.BackoffMax
	for i := 1; i < attempts; i++ {
		if b > limit/2 {
			b = limit
			break
		}
		b *= 2
	}
	b = min(b, limit)
	half := b / 2
	return b - half + rand.N(half+1)
}

// Release returns leased paths to pending, due now, attempts unchanged; it
// is how a shutting-down worker hands back unfinished work. Paths that are
// not leased are ignored, and so is an empty list. The change is fsynced
// before Release returns.
func (q *Queue) Release(paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	n, err := q.move("release", paths, Leased, func(it Item, now time.Time) Item {
		it.State, it.NextAttempt, it.LeasedAt = Pending, now, time.Time{}
		return it
	})
	if n > 0 {
		q.signal()
	}
	return err
}

// Retry puts failed paths back to pending, due now, attempts reset, and
// returns how many moved. Empty paths means every failed item. A named path
// that is not failed is ignored and not counted. The change is fsynced
// before Retry returns.
func (q *Queue) Retry(paths []string) (int, error) {
	n, err := q.move("retry", paths, Failed, requeued)
	if n > 0 {
		q.signal()
	}
	return n, err
}

// RetryTransient moves back to pending, like Retry, every failed item whose
// last failure was transient and happened at or after since. The daemon
// calls it when uploads succeed again after an outage, so that paths that
// used up their attempts while the cache was unreachable are not left in
// the failed list. Items that failed permanently stay.
func (q *Queue) RetryTransient(since time.Time) (int, error) {
	var paths []string
	err := q.view("retry transient", func(tx *bolt.Tx) error {
		items, err := failedItems(tx, 0)
		for _, it := range items {
			if !it.Permanent && !it.FailedAt.Before(since) {
				paths = append(paths, it.Path)
			}
		}
		return err
	})
	if err != nil || len(paths) == 0 {
		return 0, err
	}
	return q.retryNamed(paths)
}

func (q *Queue) retryNamed(paths []string) (int, error) {
	n, err := q.move("retry", paths, Failed, requeued)
	if n > 0 {
		q.signal()
	}
	return n, err
}

// move applies fn to every named path in state from (every item in that
// state when paths is empty) in one transaction.
func (q *Queue) move(op string, paths []string, from State, fn func(Item, time.Time) Item) (int, error) {
	n := 0
	err := q.update(op, func(tx *bolt.Tx) error {
		n = 0
		var items []Item
		var err error
		switch {
		case len(paths) == 0 && from == Failed:
			items, err = failedItems(tx, 0)
		case len(paths) == 0:
			items, err = scanItems(tx, from, 0)
		default:
			items, err = namedItems(tx, paths, from)
		}
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return errNoChange
		}
		now := q.cfg.Now()
		d := deltas{}
		for _, prev := range items {
			if err := store(tx, &prev, fn(prev, now), d); err != nil {
				return err
			}
		}
		n = len(items)
		return d.apply(tx)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// namedItems loads the distinct paths that are in state st.
func namedItems(tx *bolt.Tx, paths []string, st State) ([]Item, error) {
	var out []Item
	seen := make(map[string]bool, len(paths))
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		it, ok, err := getItem(tx, p)
		if err != nil {
			return nil, err
		}
		if ok && it.State == st {
			out = append(out, it)
		}
	}
	return out, nil
}
