package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// schemaVersion is the layout this package reads and writes. Open refuses a
// file recorded with a newer version.
const schemaVersion = 1

// Bucket names.
const (
	bMeta     = "meta"     // "schema" -> uint64 version, "created" -> nanos
	bItems    = "items"    // path -> encodeItem
	bDue      = "due"      // timeKey(NextAttempt, path) of every pending item
	bActive   = "active"   // timeKey(EnqueuedAt, path) of every pending or leased item
	bStats    = "stats"    // counter name -> uint64
	bHistory  = "history"  // big-endian sequence -> JSON HistoryEntry
	bPresence = "presence" // key -> timeKey(marked, "")
	bPresTime = "presence_time"
	// bFailedIdx holds path -> "" for every failed item, so listing the
	// failed list does not scan the whole queue. Open rebuilds it from the
	// items, so a file last written by a version without it is indexed too.
	bFailedIdx = "failed_index"
)

// Counter names in the stats bucket. The three state counters are the State
// strings themselves.
const (
	cCompleted     = "completed"
	cDropped       = "dropped"
	cUploaded      = "uploaded"
	cSkipped       = "skipped"
	cExcluded      = "excluded"
	cHeldBack      = "held_back"
	cRealisations  = "realisations"
	cLogs          = "logs"
	cFailedTotal   = "failed_total"
	cUploadedBytes = "uploaded_bytes"
	cHistory       = "history"
	cPresence      = "presence"
)

var allBuckets = [...]string{bMeta, bItems, bDue, bActive, bStats, bHistory, bPresence, bPresTime, bFailedIdx}

var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("queue: closed")
	// ErrNotLeased is wrapped by Complete and Fail when the path is not
	// leased (never claimed, already completed, or released).
	ErrNotLeased = errors.New("not leased")
	// ErrLocked is matched (errors.Is) by the error Open returns when another
	// process holds the file.
	ErrLocked = errors.New("queue: locked by another process")
	// ErrInvalidPath is wrapped by Enqueue when a path is empty, too long or
	// contains a NUL byte; nothing of that call is recorded.
	ErrInvalidPath = errors.New("invalid path")
)

// errNoChange makes a write transaction roll back instead of committing
// (and fsyncing) when it found nothing to do.
var errNoChange = errors.New("no change")

type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return fmt.Sprintf("queue: %s is locked by another process (is another nixs3q daemon running?)", e.path)
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }

// Queue is an open queue file. All methods are safe for concurrent use.
type Queue struct {
	cfg    Config
	db     *bolt.DB
	notify chan struct{}

	// mu guards closed; every transaction runs under its read lock so Close
	// can wait for them before closing the file.
	mu     sync.RWMutex
	closed bool

	// umu guards the in-memory urgent marks (see Prioritize) and turn.
	umu    sync.Mutex
	urgent map[string]int
	turn   int // claims of one item made while both lanes had due items

	// The group committer's state (see commit.go).
	pmu      sync.Mutex
	waiting  []*writeReq
	kick     chan struct{}
	stopping chan struct{}
	stopped  chan struct{}
	commits  atomic.Uint64
}

// Open opens or creates the queue file, applying defaults to cfg and
// validating it. It fails with an error matching ErrLocked after
// cfg.LockTimeout if another process has the file open, and refuses a file
// written by a newer schema. Items left leased by a previous process return
// to pending, due at once, with their attempts unchanged; that change is
// committed before Open returns. A file of at least cfg.CompactMinSize that
// is more than half free space is first compacted (see compactIfSparse); a
// failed compaction is logged and the file used as it is. log may be nil.
func Open(cfg Config, log *zap.Logger) (*Queue, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	db, err := openLocked(cfg)
	if err != nil {
		return nil, err
	}
	if db, err = compactIfSparse(db, cfg, log); err != nil {
		if db == nil {
			return nil, fmt.Errorf("queue: open %s after compaction: %w", cfg.Path, err)
		}
		log.Warn("compaction of the queue file failed; using it as it is", zap.Error(err))
	}
	q := &Queue{
		cfg:      cfg,
		db:       db,
		notify:   make(chan struct{}, 1),
		urgent:   make(map[string]int),
		kick:     make(chan struct{}, 1),
		stopping: make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	var recovered, pending int
	err = db.Update(func(tx *bolt.Tx) error {
		var err error
		if err = initSchema(tx, cfg.Now()); err != nil {
			return err
		}
		if recovered, err = q.recoverLeases(tx); err != nil {
			return err
		}
		if err := trimHistory(tx, cfg.HistoryLimit); err != nil {
			return err
		}
		pending = int(getStat(tx, string(Pending)))
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("queue: open %s: %w", cfg.Path, err)
	}
	if recovered > 0 {
		log.Info("returned items leased by a previous process to pending", zap.Int("count", recovered))
	}
	if pending > 0 {
		q.signal()
	}
	go q.run()
	return q, nil
}

func initSchema(tx *bolt.Tx, now time.Time) error {
	meta := tx.Bucket([]byte(bMeta))
	if meta != nil {
		v := meta.Get([]byte("schema"))
		if len(v) != 8 {
			return errors.New("schema version missing: not a nixs3q queue file")
		}
		switch got := binary.BigEndian.Uint64(v); {
		case got > schemaVersion:
			return fmt.Errorf("schema version %d is newer than this nixs3q supports (%d); upgrade nixs3q", got, schemaVersion)
		case got != schemaVersion:
			return fmt.Errorf("unknown schema version %d", got)
		}
	}
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	if meta == nil {
		meta = tx.Bucket([]byte(bMeta))
		if err := meta.Put([]byte("schema"), u64(schemaVersion)); err != nil {
			return err
		}
		if err := meta.Put([]byte("created"), u64(uint64(now.UnixNano()))); err != nil {
			return err
		}
	}
	return nil
}

// recoverLeases returns every leased item to pending, due now, and brings
// the failed index in line with the items (it is missing from files written
// before it existed, and an older version that ran on the file since did not
// maintain it). Both need one scan of the items, done once per Open.
func (q *Queue) recoverLeases(tx *bolt.Tx) (int, error) {
	var leased []Item
	failedIdx := tx.Bucket([]byte(bFailedIdx))
	failed := map[string]bool{}
	err := tx.Bucket([]byte(bItems)).ForEach(func(k, v []byte) error {
		if len(v) >= 2 && v[1] == Failed.code() {
			failed[string(k)] = true
			if failedIdx.Get(k) == nil {
				return failedIdx.Put(k, []byte{})
			}
			return nil
		}
		if len(v) < 2 || v[1] != Leased.code() {
			return nil
		}
		it, err := decodeItem(string(k), v)
		if err != nil {
			return err
		}
		leased = append(leased, it)
		return nil
	})
	if err != nil {
		return 0, err
	}
	var stale [][]byte
	err = failedIdx.ForEach(func(k, _ []byte) error {
		if !failed[string(k)] {
			stale = append(stale, k)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range stale {
		if err := failedIdx.Delete(k); err != nil {
			return 0, err
		}
	}
	d := deltas{}
	now := q.cfg.Now()
	for _, prev := range leased {
		it := prev
		it.State, it.NextAttempt, it.LeasedAt = Pending, now, time.Time{}
		if err := store(tx, &prev, it, d); err != nil {
			return 0, err
		}
	}
	return len(leased), d.apply(tx)
}

// Close waits for running transactions and pending group commits, then
// closes the file. Calls after the first return ErrClosed.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stopping)
	<-q.stopped
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	return nil
}

// Notify returns a channel that receives a value whenever work may have
// become due: after an Enqueue added or requeued a path, a Retry, a Release,
// a Fail that scheduled a retry, and at Open when pending items exist.
// Signals are coalesced (capacity 1) and never block the sender; a receiver
// should re-check Claim and NextDue after each one.
func (q *Queue) Notify() <-chan struct{} { return q.notify }

func (q *Queue) signal() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// Commits returns how many group-commit transactions (carrying Enqueue and
// presence requests) were committed since Open. Concurrent Enqueue calls
// share commits, so under load it grows slower than the number of calls.
func (q *Queue) Commits() uint64 { return q.commits.Load() }

// update applies fn in a write transaction shared, through the group
// committer, with whatever other writes are waiting, so that a busy daemon's
// claims and completions share fsyncs with the hook's enqueues instead of
// queueing up one fsync each. errNoChange from fn means fn changed nothing
// and counts as success; a round in which nothing changed rolls back
// instead of committing.
func (q *Queue) update(op string, fn func(tx *bolt.Tx) error) error {
	return q.write(op, fn)
}

// updateAlone runs fn in a write transaction of its own, outside the group
// committer. errNoChange from fn rolls back and counts as success.
func (q *Queue) updateAlone(op string, fn func(tx *bolt.Tx) error) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	err := q.db.Update(fn)
	if err == nil || errors.Is(err, errNoChange) {
		return nil
	}
	return fmt.Errorf("queue: %s: %w", op, err)
}

func (q *Queue) view(op string, fn func(tx *bolt.Tx) error) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return ErrClosed
	}
	if err := q.db.View(fn); err != nil {
		return fmt.Errorf("queue: %s: %w", op, err)
	}
	return nil
}
