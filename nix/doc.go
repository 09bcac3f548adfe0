// Package nix implements the parts of Nix's on-disk and on-the-wire formats
// that a binary cache writer needs: Nix's base-32 encoding, hashes in every
// textual form Nix prints, store path validation, the NAR serialisation of a
// file tree, narinfo files, signature fingerprints and Ed25519 signing keys.
//
// Promises:
//
//   - Pure format code. Nothing here runs Nix, talks to a daemon or reads the
//     Nix database; the only file system access is DumpPath reading the tree it
//     is given (DumpPath, DumpPathListing) LoadSecretKeyFile reading the key it is given, and CheckSecretKeyFile
//     reading that file's mode and owner.
//   - The store directory is always a parameter (DefaultStoreDir is only a
//     default for callers); nothing assumes /nix/store.
//   - Output is byte-identical to Nix's: DumpPath matches `nix-store --dump`,
//     EncodeBase32 matches `nix hash to-base32`, fingerprints and signatures
//     match `nix store sign`. The tests check this against a real Nix.
//   - DumpPath streams in bounded memory, whatever the size of the tree.
//     DumpPathListing writes the same bytes and, in the same walk, records
//     the NAR's listing, whose JSON form matches the .ls files Nix writes
//     with write-nar-listing=1; it holds names and targets, never contents.
//   - Parsers are strict about what clients would reject (bad hashes, bad
//     store paths, malformed lines) and tolerant of what they ignore (unknown
//     narinfo keys).
//   - Errors are prefixed "nix: ". Store path errors match
//     errors.Is(err, ErrInvalidStorePath). Error messages never contain secret
//     key material.
//   - All functions are safe for concurrent use; values (Hash, StorePath,
//     PublicKey, *SecretKey) are immutable once made, except NarInfo, which
//     callers own and must not mutate concurrently.
package nix
