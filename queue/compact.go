package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"
)

// compactTxSize bounds the size of one transaction of a compaction, so that
// copying a large file does not hold it all in memory.
const compactTxSize = 64 << 20

// openLocked opens cfg.Path with bbolt, holding its file lock. A file that
// was replaced at cfg.Path while this call waited for the lock (another
// process compacted it) is closed and the new one opened, so the lock is
// always on the file that the path names.
func openLocked(cfg Config) (*bolt.DB, error) {
	for range 3 {
		var opened *os.File
		db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{
			Timeout: cfg.LockTimeout,
			// The freelist stays synced: with NoFreelistSync every
			// rolled-back write transaction (an empty Claim, Check)
			// would rescan the whole file.
			FreelistType: bolt.FreelistMapType,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag, perm)
				opened = f
				return f, err
			},
		})
		if err != nil {
			if errors.Is(err, berrors.ErrTimeout) {
				return nil, &lockedError{path: cfg.Path}
			}
			return nil, fmt.Errorf("queue: open %s: %w", cfg.Path, err)
		}
		same, err := sameFile(opened, cfg.Path)
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("queue: open %s: %w", cfg.Path, err)
		}
		if same {
			return db, nil
		}
		_ = db.Close()
	}
	return nil, fmt.Errorf("queue: open %s: the file keeps being replaced while it is opened", cfg.Path)
}

func sameFile(f *os.File, path string) (bool, error) {
	if f == nil {
		return false, errors.New("file handle unknown")
	}
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// compactIfSparse rewrites the file into a fresh one when it is at least
// cfg.CompactMinSize bytes and more than half of it is free pages, which
// bbolt reuses but never gives back: a queue that once held a million items
// keeps its size after draining. It copies every bucket into
// "<path>.compact", fsyncs it and renames it over the path, then opens the
// new file. A crash before the rename leaves the old file in use and the
// copy is removed at the next Open; after it, the new file is complete. It
// returns the database to use (db itself when nothing was done, or on error,
// in which case the error is to be logged and db is still usable).
func compactIfSparse(db *bolt.DB, cfg Config, log *zap.Logger) (*bolt.DB, error) {
	tmp := cfg.Path + ".compact"
	// We hold the lock on the live file, so a leftover copy is from an
	// interrupted compaction.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return db, fmt.Errorf("remove leftover %s: %w", tmp, err)
	}
	if cfg.CompactMinSize < 0 {
		return db, nil
	}
	fi, err := os.Stat(cfg.Path)
	if err != nil {
		return db, err
	}
	size := fi.Size()
	free := int64(db.Stats().FreePageN) * int64(db.Info().PageSize)
	if size < cfg.CompactMinSize || free*2 <= size {
		return db, nil
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: cfg.LockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return db, fmt.Errorf("create %s: %w", tmp, err)
	}
	fail := func(err error) (*bolt.DB, error) {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return db, err
	}
	if err := bolt.Compact(dst, db, compactTxSize); err != nil {
		return fail(fmt.Errorf("copy into %s: %w", tmp, err))
	}
	if err := dst.Sync(); err != nil {
		return fail(fmt.Errorf("sync %s: %w", tmp, err))
	}
	if err := dst.Close(); err != nil {
		_ = os.Remove(tmp)
		return db, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, cfg.Path); err != nil {
		_ = os.Remove(tmp)
		return db, fmt.Errorf("replace %s: %w", cfg.Path, err)
	}
	if err := syncDir(filepath.Dir(cfg.Path)); err != nil {
		log.Warn("compaction: fsync of the directory failed", zap.Error(err))
	}
	// The old file is now unlinked; closing it lets any process waiting for
	// its lock see, in openLocked, that the path names another file.
	if err := db.Close(); err != nil {
		log.Warn("compaction: closing the old file", zap.Error(err))
	}
	nfi, _ := os.Stat(cfg.Path)
	var newSize int64
	if nfi != nil {
		newSize = nfi.Size()
	}
	log.Info("compacted the queue file", zap.Int64("bytes_before", size), zap.Int64("bytes_after", newSize))
	ndb, err := openLocked(cfg)
	if err != nil {
		return nil, err
	}
	return ndb, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}
