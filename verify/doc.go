// Package verify checks a whole binary cache against the invariants Nix
// clients rely on, and mends what can be mended without guessing. It is
// the engine of `nixs3q verify [--repair]`; package scan does the reading.
//
// # What Check reports
//
// Each problem names the cache key at fault (Problem.Key) and, where there
// is one, the other key involved (Problem.Other):
//
//   - nix-cache-info missing, or naming another store directory;
//   - a narinfo that cannot be parsed or used (narinfo-invalid);
//   - a narinfo whose NAR is missing (nar-missing), or whose NAR's size
//     differs from FileSize (nar-size); with Config.CheckNarHashes, a NAR
//     that does not decompress to its NarHash and NarSize or does not hash
//     to its FileHash (nar-hash);
//   - a reference without a narinfo (reference-missing), and every narinfo
//     further up whose closure is therefore incomplete (closure-incomplete);
//   - a narinfo without a signature, or without one that verifies under a
//     trusted key (signature-missing, signature-untrusted);
//   - NARs no narinfo uses (orphan-nar) and unfinished uploads
//     (pending-upload), older than Config.Grace.
//
// # Promises
//
//   - Check only reads. It holds the scan's graph, never object bodies
//     beyond one narinfo per concurrent read, or one NAR stream per
//     NarConcurrency with CheckNarHashes (hashed as it streams).
//   - No false alarms from a busy cache: a listing is not a snapshot, so
//     every problem is confirmed by direct lookups (a fresh read of the
//     narinfo, a lookup of the NAR or reference, a fresh listing of the NAR
//     key) before it is reported, and young orphans and unfinished uploads
//     (Config.Grace) are taken for uploads in progress.
//   - Repair never leaves a narinfo pointing at something missing that it
//     did not already point at: paths are published again references first
//     (uploader.Uploader.Republish writes a narinfo last), narinfos are
//     removed referrers first, and every gone path is looked at again just
//     before its removal. Every step is safe to interrupt; a run after an
//     interruption picks up what is left.
//   - Orphan NARs and unfinished uploads are deleted only with
//     RepairOptions.DeleteOrphans, and only when a fresh listing shows them
//     still older than the grace period.
//   - Errors are returned wrapped (prefix "verify: "); an error means the
//     cache could not be checked (or the repair could not go on), never
//     that it has problems.
package verify
