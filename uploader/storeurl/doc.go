// Package storeurl parses the store URLs Nix users already write
// (s3://BUCKET?region=...&endpoint=..., file:///DIR) into a Spec and opens
// the cache they name.
//
// Promises:
//   - Every parameter Nix defines for these stores is either applied with
//     Nix's meaning, or reported in Spec.Ignored when it cannot matter to
//     nixs3q. Anything else (an unknown or repeated parameter, a bad value,
//     an s3-only parameter on a file URL, credentials in the URL) is an
//     error that names it.
//   - Both endpoint spellings work: endpoint=HOST[:PORT] with scheme=, and
//     endpoint=http[s]://HOST[:PORT] (Nix 2.33 and later).
//   - Redact never returns the URL's userinfo, and parse errors never
//     contain it.
package storeurl
