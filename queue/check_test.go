package queue

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap/zaptest"
)

// Check must notice each kind of damage it promises to detect.
func TestCheckDetectsViolations(t *testing.T) {
	const p = "/nix/store/a"
	tests := []struct {
		name    string
		damage  func(tx *bolt.Tx) error
		wantErr string
	}{
		{"counter off", func(tx *bolt.Tx) error {
			return deltas{string(Pending): 1}.apply(tx)
		}, "stats count pending"},
		{"missing due entry", func(tx *bolt.Tx) error {
			c := tx.Bucket([]byte(bDue)).Cursor()
			k, _ := c.First()
			return tx.Bucket([]byte(bDue)).Delete(k)
		}, "due index membership"},
		{"stale due entry", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bDue)).Put(timeKey(time.Unix(1, 0), p), []byte{})
		}, "does not match"},
		{"orphan active entry", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bActive)).Put(timeKey(time.Unix(1, 0), "/nix/store/gone"), []byte{})
		}, "not queued"},
		{"history over limit", func(tx *bolt.Tx) error {
			for range 3 {
				if err := appendHistory(tx, historyRecord{Path: p}, deltas{}); err != nil {
					return err
				}
			}
			return nil
		}, "limit 2"},
		{"presence without index", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bPresence)).Put([]byte("k"), timeKey(time.Unix(5, 0), ""))
		}, "no time index entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Open(Config{Path: filepath.Join(t.TempDir(), "q.db"), HistoryLimit: 2}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			enqueue(t, q, p)
			if err := q.Check(); err != nil {
				t.Fatalf("clean queue: %v", err)
			}
			if err := q.db.Update(tt.damage); err != nil {
				t.Fatal(err)
			}
			err = q.Check()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check() = %v, want it to report %q", err, tt.wantErr)
			}
		})
	}
}
