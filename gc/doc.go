// Package gc collects garbage in a binary cache that several builders share
// with no coordination: a plain S3 bucket or a local directory, read and
// written only through uploader.Cache. It keeps the closures, following
// narinfo References, of three sets and deletes everything else:
//
//  1. every narinfo modified at or after the cutoff (Config.Cutoff);
//  2. every root a builder re-asserted at or after the cutoff;
//  3. every pin.
//
// # Records in the bucket
//
// nixs3q keeps its own records under "nixs3q/", a prefix Nix clients never
// read (scan classifies it as metadata).
//
//   - Roots: "nixs3q/roots/<YYYY-MM-DD>/<hashpart>", body the store path.
//     The uploader writes one (Reasserter, through uploader.Roots) when a
//     queued root turns out to be in the cache already, unless the same
//     daemon published it less than an hour ago (its narinfo is then young
//     enough to keep it by itself for any keep period of a day or more; with
//     --keep-since closer than that, such a push is not counted). The key
//     depends only
//     on the root and the UTC day, so builders write identical objects and
//     need no coordination, and gc reads the day from the key: a listing
//     (one request per 1,000 records) is enough, no record is read, and no
//     object time is trusted. A record of day D keeps its closure while
//     D+1 00:00 UTC is at or after the cutoff. The queue's presence cache
//     remembers the records this machine wrote, so a root costs at most one
//     PUT a day and no request at all once re-asserted today. gc deletes
//     records that no longer keep anything.
//   - Pins: "nixs3q/pins/<name>", body the pinned store paths, one a line.
//     `nixs3q pin` writes them, `nixs3q unpin` deletes them. A pin that
//     cannot be read stops gc: it must not collect what the pin may hold.
//   - The lock: "nixs3q/gc/lock" (Lock).
//   - The report of the last run: "nixs3q/gc/last.json" (Report), which the
//     daemon reads for `status` and its metrics.
//
// # The lock
//
// One gc runs per bucket. S3 offers no compare-and-swap on every server, so
// Lock is advisory: a run reads the lock object, refuses to start while
// another run's unexpired lock is there (naming its host, process and
// start), writes its own with a random owner ID and an expiry, waits
// Config.LockSettle, and reads it back; another owner there means another
// run won and this one refuses. While running it rewrites the lock every
// third of its TTL, first reading it to see that it is still its own, and
// it deletes nothing while its last successful refresh is older than the
// TTL. A killed run's lock expires after the TTL (10 minutes by default).
// The residual race: two runs that start within the settle delay of each
// other can both read their own lock back; the later write wins, and the
// other run stops at its next refresh. That is harmless for consistency:
// each run deletes only a set closed under referrers (what no kept narinfo
// reaches), in referrers-first order, so the union of two runs' deletions
// keeps every invariant below; at worst requests are wasted and one report
// is lost. The lock exists for cost and clear reports, not for safety.
// Expiry compares the lock's time with the local clock: clocks of machines
// running gc must agree to well within the TTL.
//
// # Order of deletion
//
// At no moment does a narinfo that is still present reference a deleted
// narinfo or NAR:
//
//  1. Narinfos, referrers first: a dead narinfo is deleted only after every
//     dead narinfo referring to it. What is dead is closed under referrers
//     (a kept referrer would keep its references), so no kept narinfo ever
//     refers to a deleted one.
//  2. Then NARs that no remaining narinfo uses, after a fresh listing: two
//     store paths with the same contents share one NAR key, and a NAR
//     rewritten since the mark (a builder publishing a path with the same
//     contents) is kept. Also NARs that no narinfo has used since before the
//     cutoff (uploads that crashed between NAR and narinfo).
//  3. Then the ".ls" listings of deleted paths (and orphaned ones older than
//     the cutoff), root records that keep nothing any more, and unfinished
//     uploads (uploader.PendingLister) started before the cutoff.
//
// Interrupting a run (SIGINT, SIGKILL, a lost network) at any point leaves a
// consistent bucket, because every single deletion keeps the invariant; the
// next run finishes the job.
//
// # Live builders
//
// The race: a builder looks up X (or trusts its presence cache) and finds it
// present, then publishes a narinfo Y that references X, while gc has
// decided that X is dead and deletes it. Three measures close it:
//
//   - Recheck before publishing (package uploader): right before a narinfo
//     is written, every reference the uploader did not upload itself in that
//     call, and the path's own NAR, are looked up again when they were last
//     seen more than uploader.RecheckAfter (10 s) ago; a vanished one fails
//     the attempt (nothing is published) and the retry uploads it. The
//     narinfo write must then finish within uploader.PublishTimeout (20 s).
//     So a narinfo is written at most 30 s after its references were last
//     seen present, however long its NAR took to upload.
//   - Settle and restore (here): after deleting narinfos, gc waits
//     Config.Settle (default 60 s, more than those 30 s), lists the bucket
//     again and reads every narinfo that is new or rewritten since the scan.
//     If one references a narinfo gc deleted, gc writes the deleted narinfo
//     back, with its references that it deleted too, references first, from
//     the exact bytes it read before deleting (their NARs are still there:
//     NARs are deleted only after this step). A builder that saw X before gc
//     deleted it publishes Y within 30 s of seeing it, so before the
//     re-listing: Y is found and X restored. A builder that looks after the
//     deletion finds X missing and uploads it.
//   - Settle and retract: after deleting NARs, gc waits Config.Settle again
//     and lists once more. A NAR cannot be written back, so a narinfo
//     published meanwhile whose NAR gc deleted (two store paths with
//     identical contents, one dead and one being published in the same
//     seconds) is deleted, with its new referrers first; the builder
//     uploads it again at its next push, and clients never see it broken.
//
// Mark and sweep with a grace period (Config.Grace) comes on top: gc scans,
// waits Grace, scans again and deletes only what was dead both times and
// unchanged in between; everything written since the first scan is live.
// The protocol above does not need it, so the default is 0 and one run with
// Grace 0 does a complete collection. Set it above the longest upload of any
// writer that does not recheck (`nix copy`, older nixs3q versions) when
// such writers share the bucket.
//
// The window is closed, under stated assumptions: a narinfo write that the
// server commits more than Settle after the builder's last recheck (a PUT
// stuck on the network past its 20 s deadline and committed afterwards),
// or a gc killed between deleting X and its restore step while a builder
// publishes Y in those seconds, leave Y with a missing reference until Y's
// builder pushes it again. `nixs3q verify` finds such narinfos.
//
// # Cost
//
// A run lists the bucket (one request per 1,000 objects) and reads every
// narinfo once (package scan), twice with a grace period; it reads each
// narinfo it deletes once more (to be able to restore it), lists the bucket
// once or twice more after deleting, and sends one DELETE per object
// deleted. Memory is the scan's graph plus the bytes of the deleted
// narinfos.
package gc
