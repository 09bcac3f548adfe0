package queue

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Check verifies the file's invariants and returns every violation found
// (joined), or nil: bbolt's own consistency check is clean; each pending
// item appears exactly once in the due index under its NextAttempt, and
// leased and failed items not at all; each pending or leased item appears
// exactly once in the active index under its EnqueuedAt; the failed index
// names exactly the failed items; the state counters
// equal the actual counts; the history holds at most HistoryLimit entries
// and matches its counter; the presence marks and their time index agree.
// It runs in a write transaction that it rolls back (bbolt's check is not
// safe beside concurrent writers otherwise), so it blocks writers for the
// duration of a full scan: it is meant for tests and diagnostics.
func (q *Queue) Check() error {
	var errs []error
	err := q.updateAlone("check", func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			errs = append(errs, fmt.Errorf("bbolt: %w", err))
		}
		errs = append(errs, checkItems(tx)...)
		errs = append(errs, checkHistory(tx, q.cfg.HistoryLimit)...)
		errs = append(errs, checkPresence(tx)...)
		return errNoChange
	})
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("queue: check: %w", errors.Join(errs...))
	}
	return nil
}

func checkItems(tx *bolt.Tx) []error {
	var errs []error
	counts := map[State]int64{}
	due, active := tx.Bucket([]byte(bDue)), tx.Bucket([]byte(bActive))
	err := tx.Bucket([]byte(bItems)).ForEach(func(k, v []byte) error {
		it, err := decodeItem(string(k), v)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		counts[it.State]++
		inDue := due.Get(timeKey(it.NextAttempt, it.Path)) != nil
		inActive := active.Get(timeKey(it.EnqueuedAt, it.Path)) != nil
		if (it.State == Pending) != inDue {
			errs = append(errs, fmt.Errorf("item %s is %s but due index membership is %v", it.Path, it.State, inDue))
		}
		if (it.State != Failed) != inActive {
			errs = append(errs, fmt.Errorf("item %s is %s but active index membership is %v", it.Path, it.State, inActive))
		}
		if it.State == Leased && it.LeasedAt.IsZero() {
			errs = append(errs, fmt.Errorf("item %s is leased without a lease time", it.Path))
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	// Every index entry must belong to a matching item; together with the
	// membership checks above this makes each entry unique per item.
	errs = append(errs, checkIndex(tx, bDue, func(it Item, k []byte) bool {
		return it.State == Pending && string(k) == string(timeKey(it.NextAttempt, it.Path))
	})...)
	errs = append(errs, checkIndex(tx, bActive, func(it Item, k []byte) bool {
		return it.State != Failed && string(k) == string(timeKey(it.EnqueuedAt, it.Path))
	})...)
	errs = append(errs, checkFailedIndex(tx, counts[Failed])...)
	for _, st := range []State{Pending, Leased, Failed} {
		if got := getStat(tx, string(st)); got != counts[st] {
			errs = append(errs, fmt.Errorf("stats count %s is %d, actual %d", st, got, counts[st]))
		}
	}
	return errs
}

// checkFailedIndex verifies that the failed index names exactly the failed
// items: each entry is a failed item, and there are as many entries as
// failed items.
func checkFailedIndex(tx *bolt.Tx, failed int64) []error {
	var errs []error
	var n int64
	err := tx.Bucket([]byte(bFailedIdx)).ForEach(func(k, _ []byte) error {
		n++
		it, ok, err := getItem(tx, string(k))
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok || it.State != Failed:
			errs = append(errs, fmt.Errorf("failed index names %s, which is not failed", k))
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if n != failed {
		errs = append(errs, fmt.Errorf("failed index has %d entries, %d items are failed", n, failed))
	}
	return errs
}

func checkIndex(tx *bolt.Tx, name string, match func(Item, []byte) bool) []error {
	var errs []error
	err := tx.Bucket([]byte(name)).ForEach(func(k, _ []byte) error {
		_, path, err := parseTimeKey(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s index: %w", name, err))
			return nil
		}
		it, ok, err := getItem(tx, path)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok:
			errs = append(errs, fmt.Errorf("%s index names %s, which is not queued", name, path))
		case !match(it, k):
			errs = append(errs, fmt.Errorf("%s index entry %x does not match item %s (%s)", name, k, path, it.State))
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errs
}

func checkHistory(tx *bolt.Tx, limit int) []error {
	var errs []error
	n := int64(tx.Bucket([]byte(bHistory)).Stats().KeyN)
	if n > int64(limit) {
		errs = append(errs, fmt.Errorf("history holds %d entries, limit %d", n, limit))
	}
	if got := getStat(tx, cHistory); got != n {
		errs = append(errs, fmt.Errorf("stats count history is %d, actual %d", got, n))
	}
	return errs
}

func checkPresence(tx *bolt.Tx) []error {
	var errs []error
	byTime := tx.Bucket([]byte(bPresTime))
	pres := tx.Bucket([]byte(bPresence))
	var n int64
	err := pres.ForEach(func(k, v []byte) error {
		n++
		marked, _, err := parseTimeKey(v)
		if err != nil || byTime.Get(timeKey(marked, string(k))) == nil {
			errs = append(errs, fmt.Errorf("presence mark %q has no time index entry", k))
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if m := int64(byTime.Stats().KeyN); m != n {
		errs = append(errs, fmt.Errorf("presence has %d marks but %d time index entries", n, m))
	}
	if got := getStat(tx, cPresence); got != n {
		errs = append(errs, fmt.Errorf("stats count presence is %d, actual %d", got, n))
	}
	return errs
}
