// Package daemon is the long-running half of nixs3q. It owns the queue,
// answers the hook protocol on a Unix socket, ingests the hook's spool, and
// runs a pool of workers that hand queued paths to the uploader.
//
// Daemon only assembles these parts, each testable on its own:
//   - handler carries out protocol requests (hook.Handler): it decides
//     access, validates paths, queues them, retries failures, assembles
//     the status and answers wait long polls (wait.go). hook.Server does
//     the framing, decoding and checks.
//   - pool claims due items and runs them on at most Workers goroutines,
//     plus one goroutine for the items someone waits for, handing every
//     outcome to the recorder.
//   - recorder is the one place outcomes are recorded: the queue, the
//     metrics, the throughput meter, the cache's health, the waiters of
//     the path and the progress tracker.
//   - cacheHealth checks the cache at start-up, keeps checking in the
//     background while it is unreachable, and revives items that failed
//     during an outage once uploads succeed again.
//
// Promises:
//   - An enqueue is acknowledged only after queue.Enqueue returned, that is
//     after the paths are committed and fsynced.
//   - Every path is checked before it is queued: store-path syntax, inside
//     the store directory, and present on disk. A request with any invalid
//     path is refused whole and changes nothing.
//   - Only root, the daemon's own user and members of the allowed group may
//     enqueue or retry; the peer's credentials (SO_PEERCRED) are checked on
//     every connection. Anyone who can reach the socket may ask for status.
//   - Malformed or oversized messages get an error reply; the daemon keeps
//     serving.
//   - A cache that is permanently unusable at start-up (no such bucket,
//     access denied, another store directory) stops Run with an error
//     wrapping ErrCacheUnusable before anything is listened on or queued.
//     An unreachable cache does not: queueing never depends on the network.
//   - Bounded resources per peer (enforced by hook.Server with the limits
//     of Config): connections are limited overall and per user other than
//     root and the daemon's, checked before any input is read; idle
//     connections hold no buffer; a request must be read and answered
//     within Config.RequestTimeout; status-only peers may send lines of
//     4 KiB at most; accept errors back off; refusals and accept errors are
//     logged at most once a second, with the count of those held back.
//   - The socket is created only in a directory owned by root or the
//     daemon's user that others cannot write, with its final mode and group
//     (bound in a private directory and renamed into place); the umask is
//     never changed; only a refused connection marks an old socket stale.
//   - The spool is read only from a directory others cannot write, and only
//     from regular files owned by root or the daemon's user; a file that
//     cannot be read is moved to spool/bad/ and logged once.
//   - One failing path never blocks the others: each queue item is retried
//     with backoff on its own and ends in the failed list after its attempts.
//     Items that ran out of attempts on transient errors go back to pending
//     by themselves after the next successful upload.
//   - A path garbage-collected while queued is dropped with a log line.
//   - A wait is answered as soon as every path in it is finished, within
//     moments of the outcome being recorded, or after its hold; it never
//     polls. Paths waited for by a peer that may enqueue are claimed ahead
//     of the backlog (which keeps a share of every claim) and upload under
//     uploader.Urgent, for as long as the peer keeps asking and 10 s more.
//   - An enqueue naming its derivation (the hook's DRV_PATH) also queues the
//     build (hook.BuildItem), whose realisations and log the uploader
//     publishes after the batch of paths; an unusable derivation is logged
//     and left out, never the reason outputs are refused.
//   - Items the upload filters keep out are finished, not failed, and are
//     counted and named in the status.
//   - On shutdown (context cancelled, SIGTERM in main) intake stops at once,
//     in-flight uploads get a bounded grace period, and whatever is not
//     finished stays queued for the next start.
package daemon
