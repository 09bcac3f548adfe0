package nix

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

// Vectors printed by `nix-hash --to-base32` (Nix 2.8) for the digests of
// "abc" and for single set bits at either end of a sha256 digest.
var base32Vectors = []struct{ hex, nix32 string }{
	{"", ""},
	{"900150983cd24fb0d6963f7d28e17f72", "3jgzhjhz9zjvbb0kyj7jc500ch"},
	{"a9993e364706816aba3e25717850c26c9cd0d89d", "kpcd173cq987hw957sx6m0868wv3x6d9"},
	{"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"},
	{"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f", "2gs8k559z4rlahfx0y688s49m2vvszylcikrfinm30ly9rak69236nkam5ydvly1ai7xac99vxfc4ii84hawjbk876blyk1jfhkbbyx"},
	{"0000000000000000000000000000000000000000000000000000000000000001", "0080000000000000000000000000000000000000000000000000"},
	{"8000000000000000000000000000000000000000000000000000000000000000", "0000000000000000000000000000000000000000000000000040"},
}

func TestBase32Vectors(t *testing.T) {
	for _, v := range base32Vectors {
		b, err := hex.DecodeString(v.hex)
		if err != nil {
			t.Fatal(err)
		}
		if got := EncodeBase32(b); got != v.nix32 {
			t.Errorf("EncodeBase32(%s) = %q, want %q", v.hex, got, v.nix32)
		}
		got, err := DecodeBase32(v.nix32)
		if err != nil {
			t.Errorf("DecodeBase32(%q): %v", v.nix32, err)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("DecodeBase32(%q) = %x, want %s", v.nix32, got, v.hex)
		}
	}
}

func TestBase32RoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 80; n++ {
		for range 20 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			s := EncodeBase32(b)
			if len(s) != base32Len(n) {
				t.Fatalf("len(EncodeBase32(%d bytes)) = %d, want %d", n, len(s), base32Len(n))
			}
			if strings.Trim(s, base32Alphabet) != "" {
				t.Fatalf("EncodeBase32(%x) = %q has characters outside the alphabet", b, s)
			}
			got, err := DecodeBase32(s)
			if err != nil {
				t.Fatalf("DecodeBase32(%q): %v", s, err)
			}
			if !bytes.Equal(got, b) {
				t.Fatalf("round trip of %x gave %x", b, got)
			}
		}
	}
}

func TestDecodeBase32Rejects(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"bad char e", "0e", "invalid base-32 character"},
		{"bad char upper", "0A", "invalid base-32 character"},
		{"bad char t", strings.Repeat("0", 51) + "t", "invalid base-32 character"},
		{"length 1", "0", "invalid length"},
		{"length 3", "000", "invalid length"},
		{"length 54", strings.Repeat("0", 54), "invalid length"},
		// 52 digits carry 260 bits; the top 4 must be zero for 32 bytes.
		{"excess bits", "2" + strings.Repeat("0", 51), "excess bits"},
		{"excess bits 1 byte", "80", "excess bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBase32(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeBase32(%q) error = %v, want one containing %q", tc.in, err, tc.want)
			}
		})
	}
}
