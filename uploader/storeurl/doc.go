// Package storeurl parses the store URLs Nix users already write
// (s3://BUCKET?region=...&endpoint=..., file:///DIR) into a Spec and opens
// the cache they name. A Spec holds the backend's own configuration
// (s3.Config, or the directory of the local backend) and the
// uploader.Format the URL asks for (compression, priority, listings, ...),
// each validated by its own package's Validate.
//
// Promises:
//   - Every parameter Nix defines for these stores is either applied with
//     Nix's meaning, or reported in Spec.Ignored when it cannot matter to
//     nixs3q (parallel-compression among them: nixs3q compresses as many
//     NARs at once as it uploads), or, when dropping it would change what
//     the user asked for (tls-certificate, tls-private-key), refused with
//     an error that says so. Anything else (an unknown or repeated
//     parameter, a bad value, also of an ignored parameter whose values Nix
//     checks, an s3-only parameter on a file URL, credentials in the URL) is
//     an error that names it.
//   - A Spec returned by Parse is valid: Open fails only for reasons
//     outside the URL (the AWS configuration, the file system).
//   - Both endpoint spellings work: endpoint=HOST[:PORT] with scheme=, and
//     endpoint=http[s]://HOST[:PORT][/PREFIX] (Nix 2.33 and later; the
//     prefix, placed before the bucket, from Nix 2.36).
//   - Nix 2.35's retry-attempts, retry-delay, retry-delay-rate-limited and
//     retry-max-delay set the S3 client's attempts and backoff (s3.Config
//     MaxAttempts, RetryDelay, ThrottleDelay, MaxBackoff); 0 keeps the
//     default.
//   - Redact never returns the URL's userinfo, and parse errors never
//     contain it.
package storeurl
