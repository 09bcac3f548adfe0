package nix

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestParseHashForms(t *testing.T) {
	abc256, _ := hex.DecodeString("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
	abc1, _ := hex.DecodeString("a9993e364706816aba3e25717850c26c9cd0d89d")
	abcMD5, _ := hex.DecodeString("900150983cd24fb0d6963f7d28e17f72")
	abc512, _ := hex.DecodeString("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
	for _, tc := range []struct {
		in     string
		algo   string
		digest []byte
	}{
		{"sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", "sha256", abc256},
		{"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256", abc256},
		{"sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", "sha256", abc256},
		{"sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", "sha256", abc256},
		{"sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", "sha256", abc256},
		{"sha1:kpcd173cq987hw957sx6m0868wv3x6d9", "sha1", abc1},
		{"sha1:a9993e364706816aba3e25717850c26c9cd0d89d", "sha1", abc1},
		{"sha1-qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", "sha1", abc1},
		{"md5:3jgzhjhz9zjvbb0kyj7jc500ch", "md5", abcMD5},
		{"md5:900150983cd24fb0d6963f7d28e17f72", "md5", abcMD5},
		{"md5-kAFQmDzST7DWlj99KOF/cg==", "md5", abcMD5},
		{"sha512:2gs8k559z4rlahfx0y688s49m2vvszylcikrfinm30ly9rak69236nkam5ydvly1ai7xac99vxfc4ii84hawjbk876blyk1jfhkbbyx", "sha512", abc512},
		{"sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==", "sha512", abc512},
	} {
		h, err := ParseHash(tc.in)
		if err != nil {
			t.Errorf("ParseHash(%q): %v", tc.in, err)
			continue
		}
		if want := (Hash{Algo: tc.algo, Digest: tc.digest}); !h.Equal(want) {
			t.Errorf("ParseHash(%q) = %s, want %s", tc.in, h, want)
		}
	}
}

func TestHashForms(t *testing.T) {
	h, err := ParseHash("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.String(), "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := h.SRI(), "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="; got != want {
		t.Errorf("SRI() = %q, want %q", got, want)
	}
	if h.IsZero() {
		t.Error("parsed hash IsZero")
	}
	if !(Hash{}).IsZero() {
		t.Error("Hash{} is not IsZero")
	}
	n := NewSHA256(h.Digest)
	if !n.Equal(h) || n.Algo != "sha256" {
		t.Errorf("NewSHA256 = %v, want %v", n, h)
	}
	n.Digest[0] ^= 1
	if h.Digest[0] == n.Digest[0] {
		t.Error("NewSHA256 shares the caller's slice")
	}
	for _, s := range []string{h.String(), h.SRI()} {
		back, err := ParseHash(s)
		if err != nil || !back.Equal(h) {
			t.Errorf("ParseHash(%q) = %v, %v; want %v", s, back, err, h)
		}
	}
}

func TestParseHashRejects(t *testing.T) {
	good32 := "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "no algorithm prefix"},
		{"no prefix", good32, "no algorithm prefix"},
		{"unknown algo", "sha3:" + good32, "unknown hash algorithm"},
		{"upper algo", "SHA256:" + good32, "unknown hash algorithm"},
		{"empty digest", "sha256:", "length 0"},
		{"short nix32", "sha256:" + good32[1:], "length 51"},
		{"long nix32", "sha256:0" + good32, "length 53"},
		{"bad nix32 char", "sha256:" + good32[:51] + "e", "invalid base-32 character"},
		{"nix32 excess bits", "sha256:z" + good32[1:], "excess bits"},
		{"bad hex", "sha256:" + strings.Repeat("g", 64), "invalid byte"},
		{"bad base64", "sha256:" + strings.Repeat("!", 43) + "=", "illegal base64"},
		{"sri wrong length", "sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0", "SRI digest has length 43"},
		{"sri of sha1 length", "sha256-qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", "SRI digest has length 28"},
		{"sri nix32", "sha256-" + good32, "SRI digest has length 52"},
		{"sha1 with sha256 digest", "sha1:" + good32, "length 52"},
		{"sri bad base64", "sha256-" + strings.Repeat("*", 43) + "=", "illegal base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHash(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "nix: ") {
				t.Fatalf("ParseHash(%q) = %v, %v; want error containing %q", tc.in, h, err, tc.want)
			}
		})
	}
}

func TestHashValidate(t *testing.T) {
	if err := NewSHA256(make([]byte, 32)).Validate(); err != nil {
		t.Errorf("valid sha256: %v", err)
	}
	for _, h := range []Hash{{}, {Algo: "sha256", Digest: make([]byte, 31)}, {Algo: "crc32", Digest: make([]byte, 4)}} {
		if err := h.Validate(); err == nil {
			t.Errorf("Validate(%v) = nil, want error", h)
		}
	}
}
