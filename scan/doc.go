// Package scan reads a whole binary cache through the uploader.Cache
// interface and builds the graph of what it holds: every narinfo with its
// store path, NAR, sizes, references and signature check; every NAR object;
// the other objects by kind (.ls listings, log/, realisations/,
// build-trace-v2/, nixs3q's own metadata under MetaPrefix, anything else);
// nix-cache-info; and unfinished uploads. `nixs3q verify` checks a cache
// with it and `nixs3q gc` decides what may be deleted with it.
//
// # Promises
//
//   - Streaming and bounded memory: the listing is consumed a page at a
//     time (Cache.List), and no object body is kept beyond the narinfo being
//     parsed: at most Config.Concurrency narinfos of at most
//     Config.MaxNarInfoSize bytes are in memory at once. The Graph keeps only
//     small per-object facts; store path hash parts are interned and
//     references are stored as IDs, so a cache of 100,000 narinfos takes
//     tens of MiB.
//   - Bounded concurrency: at most Config.Concurrency narinfo reads are in
//     flight; listing and reading overlap.
//   - Read-only: Scan never writes, deletes or aborts anything.
//   - Not a snapshot: the listing of a cache that is being written (or
//     pruned) while Scan runs may miss objects written or include objects
//     deleted meanwhile. A narinfo deleted between the listing and its read
//     is left out (and counted in Stats.Vanished). Callers that act on
//     something missing must confirm it with a direct lookup (Cache.Has,
//     Cache.Get) first; package verify does so before it reports a problem.
//   - Errors: Scan fails, wrapping the cause with %w, when the listing
//     fails, nix-cache-info or a narinfo cannot be read for another reason
//     than being absent, or ctx is done. A narinfo that can be read but not
//     parsed is not an error: its node has State Invalid and says why.
//     Nothing of a failed scan is returned: a partial graph would make
//     missing things look unreferenced.
//   - Concurrency: a Graph is immutable once Scan returns and safe for
//     concurrent use by multiple goroutines. Slices it returns are the
//     caller's, except Node.Refs and Referrers, which callers must not
//     modify. The Progress callback is never called concurrently with
//     itself.
package scan
