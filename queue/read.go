package queue

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Stats is a snapshot of the queue's counts.
type Stats struct {
	Pending, Leased, Failed int
	// OldestPending is the EnqueuedAt of the oldest pending or leased item;
	// zero if there is none.
	OldestPending time.Time
	// Cumulative since the file was created. Completed counts items finished
	// with Complete and not dropped; Dropped counts the dropped ones;
	// FailedTotal counts moves to the failed list.
	Completed, Dropped, Uploaded, Skipped, FailedTotal int64
	UploadedBytes                                      int64
	// Excluded and HeldBack count the items the upload filters kept out
	// of the cache; Realisations and Logs what build items published.
	Excluded, HeldBack, Realisations, Logs int64
}

// Stats returns the counters, read from a consistent snapshot. It costs a
// few key lookups, independent of the queue's size.
func (q *Queue) Stats() (Stats, error) {
	var s Stats
	err := q.view("stats", func(tx *bolt.Tx) error {
		s = Stats{
			Pending:       int(getStat(tx, string(Pending))),
			Leased:        int(getStat(tx, string(Leased))),
			Failed:        int(getStat(tx, string(Failed))),
			Completed:     getStat(tx, cCompleted),
			Dropped:       getStat(tx, cDropped),
			Uploaded:      getStat(tx, cUploaded),
			Skipped:       getStat(tx, cSkipped),
			FailedTotal:   getStat(tx, cFailedTotal),
			UploadedBytes: getStat(tx, cUploadedBytes),
			Excluded:      getStat(tx, cExcluded),
			HeldBack:      getStat(tx, cHeldBack),
			Realisations:  getStat(tx, cRealisations),
			Logs:          getStat(tx, cLogs),
		}
		if k, _ := tx.Bucket([]byte(bActive)).Cursor().First(); k != nil {
			t, _, err := parseTimeKey(k)
			if err != nil {
				return err
			}
			s.OldestPending = t
		}
		return nil
	})
	return s, err
}

// Items returns up to limit items in state (limit <= 0: all). Pending items
// come earliest due first, read from the due index; failed items come in
// path order from the failed index; leased items come in path order from a
// scan of the queue; the empty state lists every
// item in path order.
func (q *Queue) Items(state State, limit int) ([]Item, error) {
	if state != "" && state.code() == 0 {
		return nil, fmt.Errorf("queue: items: unknown state %q", state)
	}
	var out []Item
	err := q.view("items", func(tx *bolt.Tx) error {
		var err error
		switch state {
		case Pending:
			out, err = pendingItems(tx, limit)
		case Failed:
			out, err = failedItems(tx, limit)
		default:
			out, err = scanItems(tx, state, limit)
		}
		return err
	})
	return out, err
}

// Get returns the item for path; ok is false when path is not queued.
func (q *Queue) Get(path string) (Item, bool, error) {
	var it Item
	var ok bool
	err := q.view("get "+path, func(tx *bolt.Tx) error {
		var err error
		it, ok, err = getItem(tx, path)
		return err
	})
	return it, ok, err
}

func pendingItems(tx *bolt.Tx, limit int) ([]Item, error) {
	var out []Item
	c := tx.Bucket([]byte(bDue)).Cursor()
	for k, _ := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Next() {
		_, path, err := parseTimeKey(k)
		if err != nil {
			return nil, err
		}
		it, ok, err := getItem(tx, path)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("due index names %s, which is not queued", path)
		}
		out = append(out, it)
	}
	return out, nil
}

// failedItems returns up to limit failed items in path order, read from the
// failed index: its cost follows the number listed, not the queue's size.
func failedItems(tx *bolt.Tx, limit int) ([]Item, error) {
	var out []Item
	c := tx.Bucket([]byte(bFailedIdx)).Cursor()
	for k, _ := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, _ = c.Next() {
		it, ok, err := getItem(tx, string(k))
		if err != nil {
			return nil, err
		}
		if !ok || it.State != Failed {
			return nil, fmt.Errorf("failed index names %s, which is not failed", k)
		}
		out = append(out, it)
	}
	return out, nil
}

// scanItems returns up to limit items in state ("" for any), in path order.
// It filters on the encoded state byte and decodes only the matches.
func scanItems(tx *bolt.Tx, state State, limit int) ([]Item, error) {
	var out []Item
	code := state.code()
	c := tx.Bucket([]byte(bItems)).Cursor()
	for k, v := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
		if code != 0 && (len(v) < 2 || v[1] != code) {
			continue
		}
		it, err := decodeItem(string(k), v)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}
