// Package daemon is the long-running half of nixs3q. It owns the queue, serves
// the hook protocol on a Unix socket, ingests the hook's spool, and runs a
// pool of workers that hand queued paths to the uploader.
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
//   - One failing path never blocks the others: each queue item is retried
//     with backoff on its own and ends in the failed list after its attempts.
//   - A path garbage-collected while queued is dropped with a log line.
//   - On shutdown (context cancelled, SIGTERM in main) intake stops at once,
//     in-flight uploads get a bounded grace period, and whatever is not
//     finished stays queued for the next start.
package daemon
