// Package hook is the small, versioned wire protocol between nixs3q's clients
// (the post-build hook and the CLI) and the daemon, plus the pieces the hook
// needs when the daemon is away: the spool and derivation output parsing.
//
// It imports only the standard library, so that nixs3q-hook, which Nix runs
// after every build and waits for, starts in about a millisecond.
//
// Protocol: a client connects to the daemon's Unix socket and writes one JSON
// object per line (a Request); the daemon answers each with one JSON line (a
// Response). A line is at most MaxMessageSize bytes. An enqueue is answered
// only after the paths are committed and fsynced in the daemon's queue, so an
// OK answer means the paths survive a crash.
//
// Spool: when the daemon cannot be reached, the hook writes its paths into
// the spool directory as a new file, atomically (temporary file, fsync,
// rename, directory fsync). The daemon ingests spool files at start-up and
// while it runs, and removes each only after its paths are durably queued.
package hook
