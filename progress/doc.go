// Package progress shows a person how an upload is going: paths done of
// total, NAR bytes uploaded of bytes to upload, rate, estimated time left,
// and the largest NAR being uploaded.
//
// A Display is fed Snapshots (whole states, not increments) by whoever
// knows the state: the copy command from its uploader, wait from the
// daemon's replies. It writes either
//
//   - on a terminal, one live line redrawn in place (carriage return and
//     erase-to-end-of-line, never wider than the terminal so that it never
//     wraps), at most every Config.Redraw; or
//   - anywhere else (CI logs, files), one plain line every Config.Interval,
//     so that a log shows that something is happening and a CI system that
//     kills silent jobs does not kill this one;
//
// and, from Finish, one summary line. Block redraws a multi-line view in
// place, for `status --watch`.
//
// Promises: a Display never blocks on anything but its writer, uses the
// clock it is given (Config.Now), so tests are deterministic, and is safe
// for concurrent use. Write errors are ignored: progress is decoration and
// must never fail the operation it describes.
package progress
