// Package setup sets up a binary cache (Init) and checks that every link
// from a build machine to its clients works (Doctor).
//
// Promises:
//   - Init is idempotent: run again on a set-up cache, it changes nothing
//     and its Result says so. It never overwrites a signing key; a key it
//     generates is written with mode 0600 and fsynced before anything else
//     is touched. Bad input (a malformed URL or key file, a key name with
//     white space) is refused before any change.
//   - Init only adds to a bucket's configuration: the anonymous-read
//     statement is merged into the existing policy, and the rule aborting
//     incomplete multipart uploads into the existing lifecycle rules; what
//     was there is kept.
//   - Doctor changes nothing but what it creates itself: its probe objects
//     live under a prefix of their own (ProbePrefix plus a random name) and
//     are deleted before it returns; a probe it could not delete is named in
//     the report. Secrets (the AWS secret key, the signing key) never appear
//     in a report.
//   - Each Check has a stable Name, a Status, a Message and, unless it is
//     ok, a Fix of one sentence.
//   - Both s3:// and file:// caches work; checks that do not apply to a
//     directory are left out.
package setup
