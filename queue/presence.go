package queue

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The presence cache remembers cache keys (narinfo hash parts) recently seen
// present in the binary cache, so the uploader can skip asking again. It is
// advisory: losing a mark costs one extra lookup, never correctness.
// Marks older than Config.PresenceMaxAge, and the oldest beyond
// Config.PresenceLimit, are pruned whenever marks are written.

// PresentFresh reports which of keys were marked present at most ttl ago
// (and at most PresenceMaxAge ago). Keys not fresh are absent from the map.
func (q *Queue) PresentFresh(keys []string, ttl time.Duration) (map[string]bool, error) {
	fresh := make(map[string]bool)
	err := q.view("present fresh", func(tx *bolt.Tx) error {
		now := q.cfg.Now()
		maxAge := min(ttl, q.cfg.PresenceMaxAge)
		b := tx.Bucket([]byte(bPresence))
		for _, k := range keys {
			if k == "" {
				continue
			}
			v := b.Get([]byte(k))
			if v == nil {
				continue
			}
			marked, _, err := parseTimeKey(v)
			if err != nil {
				return fmt.Errorf("presence %s: %w", k, err)
			}
			if age := now.Sub(marked); age >= 0 && age <= maxAge {
				fresh[k] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return fresh, nil
}

// MarkPresent records keys as present now, then prunes old marks. The write
// is group-committed with concurrent Enqueue calls and has completed when
// MarkPresent returns.
func (q *Queue) MarkPresent(keys []string) error {
	if err := checkKeys(keys); err != nil {
		return fmt.Errorf("queue: mark present: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	return q.write("mark present", func(tx *bolt.Tx) error {
		now := q.cfg.Now()
		d := deltas{}
		for _, k := range keys {
			existed, err := unmark(tx, k)
			if err != nil {
				return err
			}
			if !existed {
				d[cPresence]++
			}
			if err := tx.Bucket([]byte(bPresence)).Put([]byte(k), timeKey(now, "")); err != nil {
				return fmt.Errorf("presence %s: %w", k, err)
			}
			if err := tx.Bucket([]byte(bPresTime)).Put(timeKey(now, k), []byte{}); err != nil {
				return fmt.Errorf("presence %s: %w", k, err)
			}
		}
		if err := d.apply(tx); err != nil {
			return err
		}
		return q.prunePresence(tx, now)
	})
}

// ForgetPresent removes the marks of keys, e.g. after the cache reported one
// of them missing. It has completed when it returns.
func (q *Queue) ForgetPresent(keys []string) error {
	if err := checkKeys(keys); err != nil {
		return fmt.Errorf("queue: forget present: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	return q.write("forget present", func(tx *bolt.Tx) error {
		d := deltas{}
		for _, k := range keys {
			existed, err := unmark(tx, k)
			if err != nil {
				return err
			}
			if existed {
				d[cPresence]--
			}
		}
		return d.apply(tx)
	})
}

func checkKeys(keys []string) error {
	for _, k := range keys {
		if k == "" || len(k) > maxPathLen {
			return errors.New("key must be 1 to 4096 bytes")
		}
	}
	return nil
}

// unmark deletes the mark of k and its time index entry.
func unmark(tx *bolt.Tx, k string) (bool, error) {
	b := tx.Bucket([]byte(bPresence))
	v := b.Get([]byte(k))
	if v == nil {
		return false, nil
	}
	marked, _, err := parseTimeKey(v)
	if err != nil {
		return false, fmt.Errorf("presence %s: %w", k, err)
	}
	if err := tx.Bucket([]byte(bPresTime)).Delete(timeKey(marked, k)); err != nil {
		return false, fmt.Errorf("presence %s: %w", k, err)
	}
	if err := b.Delete([]byte(k)); err != nil {
		return false, fmt.Errorf("presence %s: %w", k, err)
	}
	return true, nil
}

// prunePresence deletes marks older than PresenceMaxAge and the oldest marks
// beyond PresenceLimit, walking the time index from its oldest end.
func (q *Queue) prunePresence(tx *bolt.Tx, now time.Time) error {
	cutoff := now.Add(-q.cfg.PresenceMaxAge)
	excess := getStat(tx, cPresence) - int64(q.cfg.PresenceLimit)
	var old []string
	c := tx.Bucket([]byte(bPresTime)).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		marked, key, err := parseTimeKey(k)
		if err != nil {
			return err
		}
		if !marked.Before(cutoff) && int64(len(old)) >= excess {
			break
		}
		old = append(old, key)
	}
	for _, k := range old {
		if _, err := unmark(tx, k); err != nil {
			return err
		}
	}
	return deltas{cPresence: -int64(len(old))}.apply(tx)
}
