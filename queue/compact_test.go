package queue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap/zaptest"
)

// fillAndDrain enqueues n long paths, claims them all and completes them,
// leaving a file whose pages are mostly free.
func fillAndDrain(t *testing.T, q *Queue, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += 1000 {
		var batch []string
		for j := i; j < min(n, i+1000); j++ {
			batch = append(batch, fmt.Sprintf("/nix/store/%032d-%s", j, strings.Repeat("x", 2000)))
		}
		if _, err := q.Enqueue(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for {
		items, err := q.Claim(1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) == 0 {
			return
		}
		// Concurrent completions share group commits (one fsync each).
		var wg sync.WaitGroup
		errs := make(chan error, len(items))
		for _, it := range items {
			wg.Go(func() {
				if err := q.Complete(it.Path, Outcome{Uploaded: 1}); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A drained queue file that is mostly free space shrinks at the next Open,
// keeping its counters, history and invariants; a file that is mostly in
// use, or below CompactMinSize, is left alone.
func TestOpenCompactsSparseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	cfg := Config{Path: path, CompactMinSize: -1}
	q, err := Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	fillAndDrain(t, q, 5_000)
	if _, err := q.Enqueue(context.Background(), []string{"/nix/store/still-pending"}); err != nil {
		t.Fatal(err)
	}
	before, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	big := fileSize(t, path)
	if big < 8<<20 {
		t.Fatalf("test setup: file only %d bytes", big)
	}

	// Below the minimum size: untouched.
	cfg.CompactMinSize = big + 1
	q, err = Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if got := fileSize(t, path); got != big {
		t.Fatalf("file below CompactMinSize changed size %d -> %d", big, got)
	}

	// A leftover copy of an interrupted compaction is removed.
	if err := os.WriteFile(path+".compact", []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.CompactMinSize = 1 << 20
	q = openTest(t, cfg)
	small := fileSize(t, path)
	if small*4 > big {
		t.Errorf("file %d bytes after compaction, was %d", small, big)
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("compaction copy left behind: %v", err)
	}
	after, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	before.OldestPending, after.OldestPending = before.OldestPending.Round(0), after.OldestPending.Round(0)
	if before != after {
		t.Errorf("stats changed by compaction:\n%+v\n%+v", before, after)
	}
	if h, err := q.History(5); err != nil || len(h) != 5 {
		t.Errorf("history after compaction: %d entries, %v", len(h), err)
	}
	if it, ok, err := q.Get("/nix/store/still-pending"); err != nil || !ok || it.State != Pending {
		t.Errorf("pending item after compaction: %+v %v %v", it, ok, err)
	}
	if err := q.Check(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// Mostly in use now: left alone.
	fi1, _ := os.Stat(path)
	q = openTest(t, cfg)
	fi2, _ := os.Stat(path)
	if !os.SameFile(fi1, fi2) {
		t.Error("a compact file was rewritten")
	}
	q.Close()
}

// A process that waited for the lock while the file was replaced (another
// process compacted it) opens the file the path names now, not the
// unlinked old one.
func TestOpenFollowsReplacedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	first, err := Open(Config{Path: path}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Enqueue(context.Background(), []string{"/nix/store/old-file"}); err != nil {
		t.Fatal(err)
	}

	other := filepath.Join(dir, "other.db")
	q2, err := Open(Config{Path: other}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q2.Enqueue(context.Background(), []string{"/nix/store/new-file"}); err != nil {
		t.Fatal(err)
	}
	q2.Close()

	opened := make(chan *Queue, 1)
	failed := make(chan error, 1)
	go func() {
		q, err := Open(Config{Path: path}, zaptest.NewLogger(t))
		if err != nil {
			failed <- err
			return
		}
		opened <- q
	}()
	// Let the second Open block on the lock of the old file, then replace
	// the file and release the lock.
	waitBlocked(t, path)
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	first.Close()
	select {
	case q := <-opened:
		defer q.Close()
		if _, ok, _ := q.Get("/nix/store/new-file"); !ok {
			t.Error("Open kept the unlinked old file")
		}
		if _, ok, _ := q.Get("/nix/store/old-file"); ok {
			t.Error("Open kept the unlinked old file")
		}
	case err := <-failed:
		t.Fatal(err)
	}
}

// waitBlocked waits until some process has path open twice (the holder and
// a waiter), as seen in /proc/self/fd.
func waitBlocked(t *testing.T, path string) {
	t.Helper()
	for range 500 {
		fds, _ := os.ReadDir("/proc/self/fd")
		n := 0
		for _, fd := range fds {
			if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && target == path {
				n++
			}
		}
		if n >= 2 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the second Open never opened the file")
}

// Failed items are listed from the failed index, not by scanning the
// queue; Open rebuilds the index for files written without it, and Check
// reports an index that disagrees with the items.
func TestFailedIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, Config{Path: path})
	ctx := context.Background()
	var paths []string
	for i := range 50 {
		paths = append(paths, fmt.Sprintf("/nix/store/p%03d", i))
	}
	if _, err := q.Enqueue(ctx, paths); err != nil {
		t.Fatal(err)
	}
	items, err := q.Claim(10)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if _, err := q.Fail(it.Path, "broken", FailOptions{Permanent: true}); err != nil {
			t.Fatal(err)
		}
	}
	failed, err := q.Items(Failed, 0)
	if err != nil || len(failed) != 10 {
		t.Fatalf("failed items: %d, %v", len(failed), err)
	}
	if err := q.Check(); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Retry([]string{failed[0].Path}); err != nil || n != 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	if failed, _ := q.Items(Failed, 0); len(failed) != 9 {
		t.Errorf("after a retry %d failed items listed, want 9", len(failed))
	}
	if err := q.Check(); err != nil {
		t.Fatal(err)
	}

	// A failed item the index does not know is not listed (the list comes
	// from the index), and Check reports the disagreement.
	err = q.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bFailedIdx)).Delete([]byte(failed[1].Path))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Items(Failed, 0); len(got) != 8 {
		t.Errorf("%d failed items listed, want 8 (read from the index)", len(got))
	}
	if err := q.Check(); err == nil || !strings.Contains(err.Error(), "failed index") {
		t.Errorf("Check = %v, want it to report the failed index", err)
	}
	// As a file from before the index: no index bucket at all.
	err = q.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(bFailedIdx)) })
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openTest(t, Config{Path: path})
	if got, _ := q.Items(Failed, 0); len(got) != 9 {
		t.Errorf("after reopening %d failed items listed, want 9", len(got))
	}
	if n, err := q.Retry(nil); err != nil || n != 9 {
		t.Errorf("retry all: %d %v", n, err)
	}
	if err := q.Check(); err != nil {
		t.Fatal(err)
	}
}
