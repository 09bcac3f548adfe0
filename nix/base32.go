package nix

import (
	"fmt"
	"strings"
)

// base32Alphabet is Nix's base-32 alphabet: digits and lower-case letters
// without e, o, u and t.
const base32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz"

// Base32Alphabet is the alphabet of Nix's base-32 encoding, in the order of
// its digits; every store path's hash part is made of these 32 characters.
const Base32Alphabet = base32Alphabet

// base32Len is the length of the Nix base-32 encoding of n bytes.
func base32Len(n int) int {
	if n == 0 {
		return 0
	}
	return (n*8-1)/5 + 1
}

// EncodeBase32 encodes b in Nix's base-32, as `nix hash to-base32` prints
// hashes. Nix reads the input as one little-endian number and prints its
// 5-bit digits most significant first, so this is not RFC 4648 base32.
func EncodeBase32(b []byte) string {
	n := base32Len(len(b))
	var sb strings.Builder
	sb.Grow(n)
	for i := n - 1; i >= 0; i-- {
		bit := i * 5
		j, k := bit/8, uint(bit%8)
		c := b[j] >> k
		if j+1 < len(b) {
			c |= b[j+1] << (8 - k)
		}
		sb.WriteByte(base32Alphabet[c&0x1f])
	}
	return sb.String()
}

// DecodeBase32 decodes Nix's base-32. It rejects characters outside the
// alphabet, lengths that EncodeBase32 never produces, and encodings whose
// unused high bits are not zero, so that decoding is the exact inverse of
// EncodeBase32.
func DecodeBase32(s string) ([]byte, error) {
	b, err := decodeBase32(s)
	if err != nil {
		return nil, fmt.Errorf("nix: %w", err)
	}
	return b, nil
}

// decodeBase32 is DecodeBase32 with errors that callers prefix themselves.
func decodeBase32(s string) ([]byte, error) {
	size := len(s) * 5 / 8
	if base32Len(size) != len(s) {
		return nil, fmt.Errorf("base-32 string of invalid length %d", len(s))
	}
	out := make([]byte, size)
	for i := 0; i < len(s); i++ {
		c := s[len(s)-1-i]
		pos := strings.IndexByte(base32Alphabet, c)
		if pos < 0 {
			return nil, fmt.Errorf("invalid base-32 character %q", c)
		}
		d := byte(pos)
		bit := i * 5
		j, k := bit/8, uint(bit%8)
		out[j] |= d << k
		carry := d >> (8 - k)
		if j+1 < size {
			out[j+1] |= carry
		} else if carry != 0 {
			return nil, fmt.Errorf("base-32 string %q has non-zero excess bits", s)
		}
	}
	return out, nil
}
