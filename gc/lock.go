package gc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
)

// Defaults of the lock.
const (
	DefaultLockTTL    = 10 * time.Minute
	DefaultLockSettle = 2 * time.Second
)

// ErrLocked reports that another gc holds the bucket's lock.
var ErrLocked = errors.New("gc: another gc is running on this cache")

// lockRecord is the body of LockKey.
type lockRecord struct {
	Owner   string    `json:"owner"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
}

// Lock is a held gc lock (see the package documentation for what it
// guarantees). Its methods are safe for concurrent use.
type Lock struct {
	cache uploader.Cache
	ttl   time.Duration
	now   func() time.Time
	rec   lockRecord

	mu        sync.Mutex
	refreshed time.Time // last successful write of rec
	lost      error     // set once another owner was seen
}

// AcquireLock takes the lock of cache: it refuses (ErrLocked) while another
// run's unexpired lock is there, writes its own, waits settle and reads it
// back. now nil means time.Now.
func AcquireLock(ctx context.Context, cache uploader.Cache, ttl, settle time.Duration, now func() time.Time) (*Lock, error) {
	if now == nil {
		now = time.Now
	}
	if ttl <= 0 {
		ttl = DefaultLockTTL
	}
	host, _ := os.Hostname()
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("gc: lock owner id: %w", err)
	}
	l := &Lock{cache: cache, ttl: ttl, now: now,
		rec: lockRecord{Owner: hex.EncodeToString(id[:]), Host: host, PID: os.Getpid(), Started: now().UTC()}}

	cur, err := readLock(ctx, cache)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	case now().Before(cur.Expires):
		return nil, heldError(cur)
	}
	if err := l.write(ctx); err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, l.abandon(ctx.Err())
	case <-time.After(settle):
	}
	cur, err = readLock(ctx, cache)
	if err != nil {
		return nil, l.abandon(err)
	}
	if cur.Owner != l.rec.Owner {
		return nil, heldError(cur)
	}
	return l, nil
}

// abandon releases a lock whose acquisition failed half-way.
func (l *Lock) abandon(err error) error {
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = l.Release(rctx)
	return err
}

func heldError(cur lockRecord) error {
	return fmt.Errorf("%w: started %s by process %d on %s, lock expires %s (if that process is gone, wait for the expiry or delete %s)",
		ErrLocked, cur.Started.Format(time.RFC3339), cur.PID, cur.Host, cur.Expires.Format(time.RFC3339), LockKey)
}

func readLock(ctx context.Context, cache uploader.Cache) (lockRecord, error) {
	var rec lockRecord
	rc, err := cache.Get(ctx, LockKey)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return rec, err
		}
		return rec, fmt.Errorf("gc: read lock: %w", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return rec, fmt.Errorf("gc: read lock: %w", err)
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.Owner == "" {
		// Unreadable: treat as held by an unknown run for one TTL from
		// now, rather than run two collections.
		return lockRecord{Owner: "unknown", Host: "unknown", Expires: time.Now().Add(DefaultLockTTL)},
			fmt.Errorf("%w: %s is not a lock this version wrote; delete it if no gc runs", ErrLocked, LockKey)
	}
	return rec, nil
}

func (l *Lock) write(ctx context.Context) error {
	l.mu.Lock()
	rec := l.rec
	l.mu.Unlock()
	at := l.now()
	rec.Expires = at.Add(l.ttl).UTC()
	body, _ := json.Marshal(rec)
	if err := l.cache.Put(ctx, LockKey, bytes.NewReader(body), uploader.PutOptions{ContentType: "application/json", Size: int64(len(body))}); err != nil {
		return fmt.Errorf("gc: write lock: %w", err)
	}
	l.mu.Lock()
	l.refreshed = at
	l.mu.Unlock()
	return nil
}

// Refresh extends the lock, after checking that it is still this run's.
func (l *Lock) Refresh(ctx context.Context) error {
	if err := l.lostErr(); err != nil {
		return err
	}
	cur, err := readLock(ctx, l.cache)
	if err == nil && cur.Owner != l.rec.Owner {
		err = heldError(cur)
	}
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w: the lock was deleted while this gc ran", ErrLocked)
	}
	if err != nil {
		if errors.Is(err, ErrLocked) {
			l.mu.Lock()
			l.lost = err
			l.mu.Unlock()
		}
		return err
	}
	return l.write(ctx)
}

func (l *Lock) lostErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Held reports whether the run may still delete: no other owner was seen
// and the last refresh is younger than the TTL, less a margin for the
// deletions in flight.
func (l *Lock) Held() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if age := l.now().Sub(l.refreshed); age > l.ttl*3/4 {
		return fmt.Errorf("%w: could not refresh the lock for %s", ErrLocked, age.Round(time.Second))
	}
	return nil
}

// Keep refreshes the lock every third of its TTL until ctx is done. Errors
// are left for Held to report.
func (l *Lock) Keep(ctx context.Context) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
			_ = l.Refresh(rctx)
			cancel()
		}
	}
}

// Release deletes the lock if it is still this run's.
func (l *Lock) Release(ctx context.Context) error {
	cur, err := readLock(ctx, l.cache)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.Owner != l.rec.Owner {
		return nil
	}
	if err := l.cache.Delete(ctx, LockKey); err != nil {
		return fmt.Errorf("gc: release lock: %w", err)
	}
	return nil
}
