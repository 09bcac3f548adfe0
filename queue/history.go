package queue

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Outcome describes how a leased item finished.
type Outcome struct {
	// Dropped is true when the path vanished (garbage-collected) before it
	// could be uploaded; it is recorded as dropped, not uploaded.
	Dropped  bool  `json:"dropped,omitempty"`
	Uploaded int   `json:"uploaded,omitempty"`  // store paths of the closure actually uploaded
	Bytes    int64 `json:"bytes,omitempty"`     // bytes sent (compressed)
	NarBytes int64 `json:"nar_bytes,omitempty"` // uncompressed NAR bytes of those uploads
	Skipped  int   `json:"skipped,omitempty"`   // closure members already in the cache
	// Excluded is 1 when the upload filters left the item's path out, and
	// HeldBack 1 when it was not published because it refers to a path
	// they left out; HeldBy names that path (the item's own when
	// excluded).
	Excluded int    `json:"excluded,omitempty"`
	HeldBack int    `json:"held_back,omitempty"`
	HeldBy   string `json:"held_by,omitempty"`
	// Realisations and Logs count what a build item published besides
	// store paths: realisations of derivation outputs, and build logs.
	Realisations int    `json:"realisations,omitempty"`
	Logs         int    `json:"logs,omitempty"`
	Detail       string `json:"detail,omitempty"`
}

// HistoryEntry is one finished item.
type HistoryEntry struct {
	Path     string
	Finished time.Time
	Outcome  Outcome
}

type historyRecord struct {
	Path     string  `json:"path"`
	Finished int64   `json:"finished"`
	Outcome  Outcome `json:"outcome"`
}

// Complete removes a leased item from the queue, appends it to the history
// (dropping the oldest entries beyond HistoryLimit) and adds the outcome to
// the cumulative counters, all in one transaction fsynced before Complete
// returns. A path that is not leased gives an error wrapping ErrNotLeased
// and changes nothing.
func (q *Queue) Complete(path string, out Outcome) error {
	return q.update("complete "+path, func(tx *bolt.Tx) error {
		prev, ok, err := getItem(tx, path)
		if err != nil {
			return err
		}
		if !ok || prev.State != Leased {
			return ErrNotLeased
		}
		d := deltas{}
		if err := remove(tx, prev, d); err != nil {
			return err
		}
		if out.Dropped {
			d[cDropped]++
		} else {
			d[cCompleted]++
		}
		d[cUploaded] += int64(out.Uploaded)
		d[cSkipped] += int64(out.Skipped)
		d[cExcluded] += int64(out.Excluded)
		d[cHeldBack] += int64(out.HeldBack)
		d[cRealisations] += int64(out.Realisations)
		d[cLogs] += int64(out.Logs)
		d[cUploadedBytes] += out.Bytes
		if err := appendHistory(tx, historyRecord{Path: path, Finished: nanos(q.cfg.Now()), Outcome: out}, d); err != nil {
			return err
		}
		if err := d.apply(tx); err != nil {
			return err
		}
		return trimHistory(tx, q.cfg.HistoryLimit)
	})
}

func appendHistory(tx *bolt.Tx, rec historyRecord, d deltas) error {
	b := tx.Bucket([]byte(bHistory))
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if err := b.Put(u64(seq), v); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	d[cHistory]++
	return nil
}

// trimHistory deletes the oldest entries beyond limit. It reads the entry
// count from the stats bucket, so it costs nothing when within the limit.
func trimHistory(tx *bolt.Tx, limit int) error {
	excess := getStat(tx, cHistory) - int64(limit)
	if excess <= 0 {
		return nil
	}
	var keys [][]byte
	c := tx.Bucket([]byte(bHistory)).Cursor()
	for k, _ := c.First(); k != nil && int64(len(keys)) < excess; k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	b := tx.Bucket([]byte(bHistory))
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("history: %w", err)
		}
	}
	return deltas{cHistory: -int64(len(keys))}.apply(tx)
}

// History returns up to limit finished entries, newest first; limit <= 0
// means all that are kept.
func (q *Queue) History(limit int) ([]HistoryEntry, error) {
	var out []HistoryEntry
	err := q.view("history", func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bHistory)).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var rec historyRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("history entry %x: %w", k, err)
			}
			out = append(out, HistoryEntry{Path: rec.Path, Finished: fromNanos(rec.Finished), Outcome: rec.Outcome})
		}
		return nil
	})
	return out, err
}
