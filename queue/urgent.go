package queue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Prioritize marks paths as waited for: while marked, Claim serves them
// before the backlog (see Claim) and ClaimUrgent serves only them. Marks
// live in memory, not in the file: they belong to the waiters, who mark
// their paths again when they reconnect to a restarted daemon. Marks are
// counted, so several waiters may mark the same path; each call must be
// matched by exactly one call of the returned function, which is safe to
// call more than once. Marking a path that is not queued is allowed and
// has no effect until it is.
func (q *Queue) Prioritize(paths []string) (unmark func()) {
	paths = slices.Compact(slices.Sorted(slices.Values(paths)))
	q.umu.Lock()
	for _, p := range paths {
		q.urgent[p]++
	}
	q.umu.Unlock()
	q.signal()
	var once bool
	return func() {
		q.umu.Lock()
		defer q.umu.Unlock()
		if once {
			return
		}
		once = true
		for _, p := range paths {
			if q.urgent[p]--; q.urgent[p] <= 0 {
				delete(q.urgent, p)
			}
		}
	}
}

// Urgent reports how many distinct paths are marked by Prioritize.
func (q *Queue) Urgent() int {
	q.umu.Lock()
	defer q.umu.Unlock()
	return len(q.urgent)
}

// IsUrgent reports whether path is marked by Prioritize.
func (q *Queue) IsUrgent(path string) bool {
	q.umu.Lock()
	defer q.umu.Unlock()
	return q.urgent[path] > 0
}

func (q *Queue) urgentPaths() []string {
	q.umu.Lock()
	defer q.umu.Unlock()
	out := make([]string, 0, len(q.urgent))
	for p := range q.urgent {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// backlogShare is the part of a claim kept for the backlog when both lanes
// have due items: urgent work goes first, but never takes a whole claim
// while anything else is due, so a steady stream of waited-for paths
// cannot starve the backlog. A claim of one item serves the backlog every
// backlogTurn-th time instead.
const (
	backlogShare = 4 // at least 1/4 of a claim, and at least one item
	backlogTurn  = 4
)

// dueUrgent returns the marked paths that are pending and due at now,
// earliest due first.
func dueUrgent(tx *bolt.Tx, marked []string, now time.Time) ([]Item, error) {
	var out []Item
	for _, p := range marked {
		it, ok, err := getItem(tx, p)
		if err != nil {
			return nil, err
		}
		if ok && it.State == Pending && !it.NextAttempt.After(now) {
			out = append(out, it)
		}
	}
	slices.SortStableFunc(out, func(a, b Item) int { return a.NextAttempt.Compare(b.NextAttempt) })
	return out, nil
}

// dueBacklog returns up to max due pending paths that are not marked,
// earliest due first, from the due index.
func dueBacklog(tx *bolt.Tx, marked []string, now time.Time, max int) ([]string, error) {
	var out []string
	c := tx.Bucket([]byte(bDue)).Cursor()
	for k, _ := c.First(); k != nil && len(out) < max; k, _ = c.Next() {
		due, path, err := parseTimeKey(k)
		if err != nil {
			return nil, err
		}
		if due.After(now) {
			break
		}
		if _, found := slices.BinarySearch(marked, path); !found {
			out = append(out, path)
		}
	}
	return out, nil
}

// pick chooses the paths of one claim of at most max items from the due
// urgent items and the due backlog, at most limit; urgentOnly leaves the
// backlog out. q.turn is only touched inside write transactions, which are
// serialised.
func (q *Queue) pick(tx *bolt.Tx, limit int, urgentOnly bool) ([]string, error) {
	now := q.cfg.Now()
	marked := q.urgentPaths()
	urgent, err := dueUrgent(tx, marked, now)
	if err != nil {
		return nil, err
	}
	var backlog []string
	if !urgentOnly {
		if backlog, err = dueBacklog(tx, marked, now, limit); err != nil {
			return nil, err
		}
	}
	reserve := 0
	if len(backlog) > 0 && len(urgent) > 0 {
		if limit == 1 {
			q.turn++
			if q.turn%backlogTurn == 0 {
				reserve = 1
			}
		} else {
			reserve = min(len(backlog), max(1, limit/backlogShare))
		}
	}
	var paths []string
	for _, it := range urgent[:min(len(urgent), limit-reserve)] {
		paths = append(paths, it.Path)
	}
	return append(paths, backlog[:min(len(backlog), limit-len(paths))]...), nil
}

// PathState is where a store path stands: in the queue, or finished and in
// the history, or neither.
type PathState struct {
	Path string
	// Queued is true when the path is in the queue; Item is then its item.
	Queued bool
	Item   Item
	// Finished is true when the path is not queued and the history has an
	// entry for it; Entry is then the newest such entry.
	Finished bool
	Entry    HistoryEntry
}

// States returns where each of paths stands, in the order given, read from
// one consistent snapshot. Paths not queued are looked up in the history,
// newest first; finding them costs a scan of at most HistoryLimit entries,
// decoding only those that mention a wanted path.
func (q *Queue) States(paths []string) ([]PathState, error) {
	out := make([]PathState, len(paths))
	err := q.view("states", func(tx *bolt.Tx) error {
		wanted := map[string][]int{}
		for i, p := range paths {
			out[i] = PathState{Path: p}
			it, ok, err := getItem(tx, p)
			if err != nil {
				return err
			}
			if ok {
				out[i].Queued, out[i].Item = true, it
				continue
			}
			wanted[p] = append(wanted[p], i)
		}
		c := tx.Bucket([]byte(bHistory)).Cursor()
		for k, v := c.Last(); k != nil && len(wanted) > 0; k, v = c.Prev() {
			if !mentionsAny(v, wanted) {
				continue
			}
			var rec historyRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("history entry %x: %w", k, err)
			}
			idx, ok := wanted[rec.Path]
			if !ok {
				continue
			}
			for _, i := range idx {
				out[i].Finished = true
				out[i].Entry = HistoryEntry{Path: rec.Path, Finished: fromNanos(rec.Finished), Outcome: rec.Outcome}
			}
			delete(wanted, rec.Path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func mentionsAny(v []byte, wanted map[string][]int) bool {
	for p := range wanted {
		if bytes.Contains(v, []byte(p)) {
			return true
		}
	}
	return false
}
