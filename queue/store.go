package queue

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The functions here are the only writers of the items bucket and its
// indexes, so the invariants checked by Check hold after every transaction.

// deltas accumulates counter changes within one transaction.
type deltas map[string]int64

func (d deltas) apply(tx *bolt.Tx) error {
	b := tx.Bucket([]byte(bStats))
	for name, delta := range d {
		if delta == 0 {
			continue
		}
		v := getStatBucket(b, name) + delta
		if err := b.Put([]byte(name), u64(uint64(v))); err != nil {
			return fmt.Errorf("stats %s: %w", name, err)
		}
	}
	return nil
}

func getStat(tx *bolt.Tx, name string) int64 {
	return getStatBucket(tx.Bucket([]byte(bStats)), name)
}

func getStatBucket(b *bolt.Bucket, name string) int64 {
	v := b.Get([]byte(name))
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// getItem loads path; ok is false when it is not queued.
func getItem(tx *bolt.Tx, path string) (Item, bool, error) {
	v := tx.Bucket([]byte(bItems)).Get([]byte(path))
	if v == nil {
		return Item{}, false, nil
	}
	it, err := decodeItem(path, v)
	return it, err == nil, err
}

// store writes it, replacing prev (nil for a new item), and keeps the due
// and active indexes and the state counters consistent.
func store(tx *bolt.Tx, prev *Item, it Item, d deltas) error {
	if prev != nil {
		if err := unindex(tx, *prev, d); err != nil {
			return err
		}
	}
	if err := tx.Bucket([]byte(bItems)).Put([]byte(it.Path), encodeItem(it)); err != nil {
		return fmt.Errorf("put %s: %w", it.Path, err)
	}
	if it.State == Pending {
		if err := tx.Bucket([]byte(bDue)).Put(timeKey(it.NextAttempt, it.Path), []byte{}); err != nil {
			return fmt.Errorf("index %s: %w", it.Path, err)
		}
	}
	if it.State != Failed {
		if err := tx.Bucket([]byte(bActive)).Put(timeKey(it.EnqueuedAt, it.Path), []byte{}); err != nil {
			return fmt.Errorf("index %s: %w", it.Path, err)
		}
	} else if err := tx.Bucket([]byte(bFailedIdx)).Put([]byte(it.Path), []byte{}); err != nil {
		return fmt.Errorf("index %s: %w", it.Path, err)
	}
	d[string(it.State)]++
	return nil
}

// remove deletes prev and its index entries.
func remove(tx *bolt.Tx, prev Item, d deltas) error {
	if err := unindex(tx, prev, d); err != nil {
		return err
	}
	if err := tx.Bucket([]byte(bItems)).Delete([]byte(prev.Path)); err != nil {
		return fmt.Errorf("delete %s: %w", prev.Path, err)
	}
	return nil
}

func unindex(tx *bolt.Tx, prev Item, d deltas) error {
	if prev.State == Pending {
		if err := tx.Bucket([]byte(bDue)).Delete(timeKey(prev.NextAttempt, prev.Path)); err != nil {
			return fmt.Errorf("unindex %s: %w", prev.Path, err)
		}
	}
	if prev.State != Failed {
		if err := tx.Bucket([]byte(bActive)).Delete(timeKey(prev.EnqueuedAt, prev.Path)); err != nil {
			return fmt.Errorf("unindex %s: %w", prev.Path, err)
		}
	} else if err := tx.Bucket([]byte(bFailedIdx)).Delete([]byte(prev.Path)); err != nil {
		return fmt.Errorf("unindex %s: %w", prev.Path, err)
	}
	d[string(prev.State)]--
	return nil
}
