// Package queue is the durable queue of store paths waiting to be uploaded.
// It is the only package of nixs3q that touches the bbolt file.
//
// Promises:
//
//   - Durability. Every method that changes the queue returns only after the
//     bbolt transaction carrying the change has been committed and fsynced,
//     except the presence cache (MarkPresent, ForgetPresent), whose writes are
//     committed the same way but carry no promise to the caller beyond
//     consistency. A path acknowledged by Enqueue survives a crash, kill -9 or
//     power loss.
//   - Idempotency. The queue holds each store path at most once. Enqueueing a
//     path that is already pending or leased changes nothing; enqueueing a
//     failed path puts it back to pending with its attempts reset.
//   - Lifecycle. pending → leased (Claim) → removed into the bounded history
//     (Complete), back to pending with a backoff (Fail, Release), or failed
//     after MaxAttempts or a permanent failure. Failed items stay until Retry
//     or a new Enqueue.
//   - Crash recovery. Open returns every item left leased by a previous
//     process to pending, due at once, attempts unchanged.
//   - Group commit. Concurrent Enqueue calls are committed together by one
//     committer goroutine in a single transaction (one fsync), without any
//     artificial delay, so the latency of one call is about one fsync.
//   - Concurrency. A Queue is safe for concurrent use by many goroutines. The
//     file is locked for one process: a second Open fails after
//     Config.LockTimeout with an error matching ErrLocked.
//   - Priority lane. Paths someone waits for (Prioritize, in memory only)
//     are claimed before the backlog, but never with the whole of a claim
//     while the backlog has due items; ClaimUrgent claims only them.
//     States says where paths stand (queued, finished in the history, or
//     neither) from one snapshot, for waiters.
//   - Cheap reads. Stats reads counters kept in the same transactions as the
//     changes they count; Claim and NextDue use an index ordered by due time;
//     the failed list is read from an index of failed items, so status costs
//     the same with a million pending items as with none.
//   - Bounded file. bbolt never shrinks its file; Open compacts a file of at
//     least Config.CompactMinSize that is more than half free (a drained
//     queue), by copying it and renaming the copy over it, crash-safely.
//
// Check verifies all of the invariants above that can be verified on disk.
//
// # Why the narinfo presence cache lives here
//
// Besides the queue, the file holds the presence cache (PresentFresh,
// MarkPresent, ForgetPresent): which narinfos were recently seen in the
// binary cache, which *Queue offers as the uploader.Presence interface. It
// lives in this package because it must persist across restarts, so that a
// restarted daemon does not look up every closure member again, and this
// package is the only one allowed to open the bbolt file, which one process
// holds locked. A second database file would mean a second lock, a second
// fsync path and a second place to check. The presence cache is advisory:
// its marks are written in their own transactions, never in those of queue
// items, and losing one costs a lookup, never correctness.
package queue
