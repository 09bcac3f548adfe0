// Package hook is the small, versioned wire protocol between nixs3q's clients
// (the post-build hook and the CLI) and the daemon, both halves of it (Client
// and Server), plus the pieces the hook needs when the daemon is away: the
// spool and derivation output parsing.
//
// Why the CLI's protocol lives here: the hook is the protocol's most
// demanding client. It must import only the standard library and this
// package, so that nixs3q-hook, which Nix runs after every build and waits
// for, starts in about a millisecond. Keeping the one protocol in the
// package the hook already links means the hook, the CLI and the daemon
// cannot drift apart, and costs the hook nothing: the Server half uses
// small interfaces (Conn, Listener) instead of the net package, and the
// Client drives the socket with plain system calls.
//
// Protocol: a client connects to the daemon's Unix socket and writes one JSON
// object per line (a request); the daemon answers each with one JSON line,
// in order. A line is at most MaxMessageSize bytes. Callers never see the
// lines: Client has one method per operation (Enqueue, Retry, Status, Ping,
// Wait) returning typed results, and the daemon implements Handler. Wait is
// a long poll: the daemon may hold its answer (up to MaxHold) until one of
// the paths finishes.
//
// Promises:
//   - An enqueue is answered only after the paths are committed and fsynced
//     in the daemon's queue, so Enqueue returning nil means the paths
//     survive a crash.
//   - A refused request changed nothing. Client methods return the refusal
//     as a typed error: *RefusedError (listing up to MaxRefusals refused
//     paths with their reasons, and counting them all),
//     or an *Error matching ErrPermission, ErrVersion, ErrMalformed,
//     ErrTooLarge or ErrBusy (a connection over the limits, closed
//     unread). Any error matching ErrUnavailable means no answer came;
//     the request may or may not have been carried out.
//   - The Server decodes strictly (unknown fields, trailing data and wrong
//     types are refused), checks the Version, refuses lines over
//     MaxMessageSize, and refuses enqueue and retry to peers the Handler
//     gives only ReadOnly access, all before the Handler sees the request.
//     Bad input gets an error answer; the Server keeps serving.
//   - The peer's identity comes from the kernel (SO_PEERCRED), never from
//     the request.
//   - Bounded resources: connections are limited overall (MaxConns) and per
//     user other than root and the Server's own (MaxConnsPerUID), checked
//     before any input is read; an idle connection holds no read buffer; a
//     request must be read and answered within RequestTimeout of its first
//     byte; a ReadOnly peer's lines are limited to ReadOnlyLineLimit;
//     accept errors (EMFILE) back off exponentially up to a second.
//   - Serve stops accepting as soon as its context is cancelled, finishes
//     the requests being carried out, and returns once every connection is
//     closed.
//
// Spool: when the daemon cannot be reached, the hook writes its paths into
// the spool directory as a new file, atomically (temporary file, fsync,
// rename, directory fsync). The daemon ingests spool files at start-up and
// while it runs, and removes each only after its paths are durably queued.
// The hook refuses a spool directory writable by group or others; ReadSpool
// reads only regular files owned by root or the reader, never follows a
// link or blocks on a FIFO, and refuses a file over 16 MiB whole.
//
// Builds: an enqueue carries the build's derivation (Drv) when the hook
// knows it, and may carry only that (Nix 2.8 gives a content-addressed
// build no OUT_PATHS, and its .drv lists no output paths). The daemon then
// also queues the build itself as BuildItem(drv), "<drv>^*", for its
// realisations and log; the spool records it the same way.
//
// Run never fails a build: it reads DRV_PATH (a regular *.drv file directly
// in the store, opened with O_NOFOLLOW|O_NONBLOCK) and talks to the daemon
// within Timeout, writes the spool within SpoolTimeout, so a build waits at
// most their sum, and reports problems as one line.
package hook
