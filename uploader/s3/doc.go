// Package s3 stores a Nix binary cache in an S3 or S3-compatible bucket
// (AWS, MinIO, Ceph RGW, R2, Garage).
//
// Promises:
//   - Store implements uploader.Cache and passes the cachetest suite.
//   - Put never makes a partial object visible: a body that fits in one
//     part is buffered (in a pooled part buffer) and sent with one
//     PutObject; larger ones are multipart uploads that are aborted on any
//     failure, including a failing body or a cancelled context. Memory per
//     Put is bounded by the part size × (PartConcurrency + 1).
//   - Requests carry UNSIGNED-PAYLOAD: bodies are not hashed into the
//     signature, over http either. Why that is safe: unsigned.go.
//   - Requests in flight are limited over all callers, reads (HeadObject,
//     GetObject, listings) and writes apart, by adaptive limits (package
//     aimd) that start at DefaultInitialRequests, grow while the server
//     answers and shrink when it throttles, within MaxReadRequests and
//     MaxWriteRequests; lookups therefore never wait behind NAR parts.
//     Every attempt is reported to Config.Observer (metrics).
//   - ListTop lists the top level under a prefix (with a delimiter), one
//     request per 1,000 keys, for the uploader's lookups by listing.
//   - Part sizes keep objects under 9,000 parts given PutOptions.SizeHint.
//   - Has treats 404 and 403 as missing; Get maps a missing key to
//     fs.ErrNotExist.
//   - Credentials come only from the AWS default chain; no credential is
//     ever logged or part of String.
//   - Transient request failures (5xx, throttling, 429, connection errors)
//     are retried inside the SDK up to MaxAttempts with exponential backoff
//     and at least the server's Retry-After: transport retries within one
//     request, nothing more. What still fails is returned translated
//     (errors.go) into uploader's neutral causes, an *uploader.BackendError
//     matching uploader.ErrAccessDenied, ErrNoSuchBucket, ErrThrottled, ...
//     with the HTTP status and the Retry-After, and keeping the SDK's error
//     and message. Whether the attempt is retried later is decided only by
//     uploader.Classify, which knows nothing of AWS.
//   - Checksums are computed only where the S3 API requires them, which
//     S3-compatible servers accept.
//   - Admin, the bucket-level view used to set up and check a cache, makes
//     exactly the requests its methods name; its probes (ProbeMultipart)
//     leave nothing behind when they succeed, and Diagnose names the cause
//     of any error it or Store returns.
package s3
