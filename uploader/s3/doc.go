// Package s3 stores a Nix binary cache in an S3 or S3-compatible bucket
// (AWS, MinIO, Ceph RGW, R2, Garage).
//
// Promises:
//   - Store implements uploader.Cache and passes the cachetest suite.
//   - Put never makes a partial object visible: small bodies are buffered
//     before their single PutObject; large ones are multipart uploads that
//     are aborted on any failure, including a failing body or a cancelled
//     context. Memory per Put is bounded by the part size × PartConcurrency.
//   - Part sizes keep objects under 9,000 parts given PutOptions.SizeHint.
//   - Has treats 404 and 403 as missing; Get maps a missing key to
//     fs.ErrNotExist.
//   - Credentials come only from the AWS default chain; no credential is
//     ever logged or part of String.
//   - Transient failures (5xx, throttling, 429, connection errors) are
//     retried inside the SDK up to MaxAttempts with exponential backoff and
//     at least the server's Retry-After; what still fails is returned for
//     uploader.Classify to judge.
//   - Checksums are computed only where the S3 API requires them, which
//     S3-compatible servers accept.
package s3
