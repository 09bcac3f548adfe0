package nix

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Hash is a digest together with the name of its algorithm as Nix spells it:
// "md5", "sha1", "sha256" or "sha512". The zero Hash means "unknown".
type Hash struct {
	Algo   string
	Digest []byte
}

// hashSize returns the digest length of a Nix hash algorithm, or 0 when Nix
// does not know the algorithm.
func hashSize(algo string) int {
	switch algo {
	case "md5":
		return 16
	case "sha1":
		return 20
	case "sha256":
		return 32
	case "sha512":
		return 64
	}
	return 0
}

// NewSHA256 returns the sha256 Hash with a copy of digest. It does not
// check the digest length; Validate does, and so do MarshalText and
// Fingerprint for the hashes they write.
func NewSHA256(digest []byte) Hash {
	return Hash{Algo: "sha256", Digest: append([]byte(nil), digest...)}
}

// IsZero reports whether h is the zero Hash, which stands for an unknown hash.
func (h Hash) IsZero() bool { return h.Algo == "" && len(h.Digest) == 0 }

// Validate reports whether h names an algorithm Nix knows and has a digest of
// that algorithm's length.
func (h Hash) Validate() error {
	n := hashSize(h.Algo)
	if n == 0 {
		return fmt.Errorf("nix: unknown hash algorithm %q", h.Algo)
	}
	if len(h.Digest) != n {
		return fmt.Errorf("nix: %s digest has %d bytes, want %d", h.Algo, len(h.Digest), n)
	}
	return nil
}

// String returns "<algo>:<nix32 digest>", the form narinfo files and
// fingerprints use. It does not validate h.
func (h Hash) String() string { return h.Algo + ":" + EncodeBase32(h.Digest) }

// SRI returns the Subresource Integrity form "<algo>-<base64 digest>", the form
// `nix path-info --json` prints.
func (h Hash) SRI() string { return h.Algo + "-" + base64.StdEncoding.EncodeToString(h.Digest) }

// Equal reports whether h and o have the same algorithm and digest.
func (h Hash) Equal(o Hash) bool { return h.Algo == o.Algo && string(h.Digest) == string(o.Digest) }

// ParseHash parses a hash in any form Nix prints with an algorithm prefix:
// "<algo>:<nix32>", "<algo>:<base16>", "<algo>:<base64>" (the encoding is
// told apart by length, as Nix does) or SRI "<algo>-<base64>". The digest
// must have exactly the algorithm's length.
func ParseHash(s string) (Hash, error) {
	var algo, rest string
	sri := false
	if i := strings.IndexByte(s, ':'); i >= 0 {
		algo, rest = s[:i], s[i+1:]
	} else if i := strings.IndexByte(s, '-'); i >= 0 {
		algo, rest, sri = s[:i], s[i+1:], true
	} else {
		return Hash{}, fmt.Errorf("nix: hash %q has no algorithm prefix", s)
	}
	size := hashSize(algo)
	if size == 0 {
		return Hash{}, fmt.Errorf("nix: hash %q: unknown hash algorithm %q", s, algo)
	}
	var (
		digest []byte
		err    error
	)
	b64Len := base64.StdEncoding.EncodedLen(size)
	switch {
	case sri && len(rest) == b64Len:
		digest, err = base64.StdEncoding.Strict().DecodeString(rest)
	case sri:
		err = fmt.Errorf("SRI digest has length %d, want %d", len(rest), b64Len)
	case len(rest) == 2*size:
		digest, err = hex.DecodeString(rest)
	case len(rest) == base32Len(size):
		digest, err = decodeBase32(rest)
	case len(rest) == b64Len:
		digest, err = base64.StdEncoding.Strict().DecodeString(rest)
	default:
		err = fmt.Errorf("digest has length %d, which is not a %s hash in base16, nix32 or base64", len(rest), algo)
	}
	if err == nil && len(digest) != size {
		err = fmt.Errorf("digest has %d bytes, want %d", len(digest), size)
	}
	if err != nil {
		return Hash{}, fmt.Errorf("nix: invalid hash %q: %w", s, err)
	}
	return Hash{Algo: algo, Digest: digest}, nil
}
