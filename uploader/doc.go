// Package uploader publishes closures of Nix store paths to a binary cache:
// store metadata, dedup against the cache, streaming NARs, compression,
// signed narinfos, and the one place where errors are classified (Classify).
//
// The package knows no storage backend. Backends (uploader/s3,
// uploader/local) implement Cache and translate their own errors into the
// neutral causes of errors.go (ErrAccessDenied, ErrNoSuchBucket,
// ErrThrottled, ... carried by a BackendError with the server's
// Retry-After); the local backend's file system errors are the standard
// library's. Classify reads only those, so nothing here imports a cloud SDK.
//
// Config holds the uploader's tuning and, embedded, the Format: how the
// cache is written (compression and its level, nix-cache-info's priority
// and mass query, NAR listings), which package storeurl reads from a store
// URL. Zero fields take the documented Default* values, filled by one
// withDefaults; Config.Validate and Format.Validate are the only checks of
// these settings (compression levels included), and New runs them.
//
// # Promises
//
//   - Consistency: a narinfo, the commit point of a path, is written only
//     after its NAR and after the narinfos of all its references are in the
//     cache. Whatever fails or is cancelled, Nix clients never see a narinfo
//     whose NAR or references are missing. With Config.WriteNarListing, a
//     path's "<hashpart>.ls" NAR listing is also in the cache before its
//     narinfo; the listing comes from the verified stream itself, so it
//     never describes a NAR other than the one published.
//   - Integrity: every NAR is hashed while it streams and checked against the
//     NarHash and NarSize the store's database records; on mismatch the
//     stream fails before its end, so the cache commits nothing at the NAR's
//     key, and the error wraps ErrHashMismatch.
//   - Bounded memory: NARs are never buffered whole. A stream holds the NAR
//     writer's buffer, the compressor's state (about 20 MiB for zstd at the
//     default level, about six times the dictionary for xz; see
//     Config.CompressionLevel) and the cache's part buffers; at most
//     Config.Concurrency streams compress at once, and at most as many more
//     whose compression ended are still sending their last parts. A NAR listing, when asked for,
//     holds the tree's names and symlink targets, never file contents.
//   - Priority: NARs of calls made under Urgent take the next free
//     streaming slot before other waiting uploads, except every fourth
//     slot, which goes to the longest waiting upload so that urgent work
//     cannot starve the rest; nothing streaming is interrupted, and
//     without urgent calls slots go in arrival order.
//   - Progress: Config.Observer, when set, learns each root's plan and each
//     uploaded path's outcome.
//   - Sharing: concurrent Upload calls share the upload of every common path
//     (one flight per store path); each waits for it.
//   - Latency: lookups of all concurrent calls share LookupConcurrency
//     requests in flight (default 256), separately from the NAR streams; a
//     large closure is looked up by listing the cache's narinfos when the
//     cache is a TopLister and not much larger than the closure (see
//     listlookup.go and Config.ListRatio); NARs up to 256 KiB are verified
//     and compressed in memory and sent with one request each, without
//     waiting for one of the Concurrency streaming slots (smallnar.go).
//   - Dedup: a path is in the cache when its narinfo is. Fresh presence-cache
//     entries save the lookup; a path known only from the presence cache is
//     confirmed with a lookup before anything referring to it is published,
//     and uploaded if it turns out missing, so a stale entry never hides a
//     missing reference.
//   - Beside garbage collection (package gc): right before a narinfo is
//     written, references this call did not upload and the path's own NAR
//     are looked up again when last seen more than RecheckAfter ago, and
//     the narinfo write is bounded by PublishTimeout; a vanished one fails
//     the attempt with ErrVanished (retryable) and publishes nothing. A
//     queued root found already in the cache is re-asserted through Roots
//     (SetRoots), so gc keeps what builders keep pushing.
//   - Filters (Config.Filters): a missing path they exclude is not
//     uploaded, and neither is a missing path that refers to one (held
//     back), so filters never break the consistency promise; both are
//     logged and counted in Result, which names what holds a root back.
//   - Builds (PublishBuild): a derivation's realisations are written, signed,
//     in the Nix 2.8 and the Nix 2.35 layouts, only after the narinfo of
//     their output; its build log (UploadLogs) goes to log/<drv basename>
//     in an encoding every Nix decodes.
//
// # Store metadata: why `nix path-info --json`
//
// NixCLI reads NarHash, NarSize, references, deriver, signatures and content
// address by running `nix path-info --json [--recursive] PATH...`:
//
//   - It goes through the store's own access path (the nix-daemon socket on
//     multi-user installs, the local store for root), so it works for any
//     store Nix is configured with and needs no read access to the database.
//   - It does not couple nixs3q to the SQLite schema of /nix/var/nix/db,
//     which Nix, Lix and Determinate Nix may change.
//   - One exec answers a whole batch (BatchSize paths, 500 by default) and
//     with --recursive their whole closure, so the cost is one process per
//     upload, not one per path.
//
// NixCLI passes --extra-experimental-features, so it needs Nix 2.4 or later
// (or Lix). The output changed over the years; the parser reads every shape:
//
//   - Nix <= 2.18 and Lix: a JSON array of objects with "path"; an invalid
//     path is {"path": ..., "valid": false}. narHash is SRI
//     ("sha256-<base64>"; Debian's Nix 2.8 prints this), older versions
//     print "sha256:<nix32>". References and deriver are full paths,
//     signatures "name:base64" strings, ca the narinfo text form
//     ("fixed:r:sha256:...", "text:sha256:...").
//   - Nix >= 2.19: an object keyed by full store path; an invalid path maps
//     to null.
//   - Newer Nix (store object info "version" 2 and 3): objects also carry
//     "storeDir"; references and deriver are basenames; narHash may be a
//     structured object {"algorithm", "format", "hash"}; ca is an object
//     {"method": "nar"|"flat"|"text"|"git", "hash": ...}, rendered back to
//     the narinfo form with nix.FormatCA; signatures may be objects
//     {"keyName", "sig"}. Missing optional fields are null.
//
// With --recursive, Nix fails outright on an invalid path ("path '...' is not
// valid"); without it, it reports the path as invalid. Both, and a path that
// os.Lstat does not find, give an error wrapping ErrPathGone.
package uploader
