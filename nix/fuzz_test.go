package nix

import (
	"reflect"
	"testing"
)

func FuzzParseNarInfo(f *testing.F) {
	f.Add([]byte("StorePath: /nix/store/" + refB + "\nURL: nar/x.nar\nCompression: none\nNarHash: sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h\nNarSize: 120\nReferences: " + refA + "\nSig: k:c2ln\n"))
	f.Add([]byte("StorePath: /nix/store/" + refB + "\nURL: u\nNarHash: sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=\nNarSize: 1\nCA: x\nDeriver: unknown-deriver\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseNarInfo(data)
		if err != nil {
			return
		}
		text, err := n.MarshalText()
		if err != nil {
			return // e.g. no Compression: parseable, but not something we write
		}
		back, err := ParseNarInfo(text)
		if err != nil {
			t.Fatalf("ParseNarInfo(MarshalText()) of %q: %v", text, err)
		}
		if !reflect.DeepEqual(back, n) {
			t.Fatalf("round trip changed narinfo:\n%+v\n%+v", n, back)
		}
	})
}

func FuzzDecodeBase32(f *testing.F) {
	for _, v := range base32Vectors {
		f.Add(v.nix32)
	}
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeBase32(s)
		if err != nil {
			return
		}
		if got := EncodeBase32(b); got != s {
			t.Fatalf("EncodeBase32(DecodeBase32(%q)) = %q", s, got)
		}
	})
}
