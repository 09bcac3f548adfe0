package nix

import (
	"reflect"
	"strings"
	"testing"
)

func TestFingerprint(t *testing.T) {
	n := fullNarInfo(t)
	fp, err := n.Fingerprint("/nix/store")
	if err != nil {
		t.Fatal(err)
	}
	want := "1;/nix/store/" + refB + ";sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h;120;/nix/store/" + refA + ",/nix/store/" + refB
	if fp != want {
		t.Errorf("Fingerprint = %q, want %q", fp, want)
	}
	n.References = nil
	if fp, err := n.Fingerprint("/nix/store"); err != nil || !strings.HasSuffix(fp, ";120;") {
		t.Errorf("Fingerprint without references = %q, %v; want it to end in \";120;\"", fp, err)
	}

	other := fullNarInfo(t)
	other.StorePath = "/custom/store/" + refB
	fp, err = other.Fingerprint("/custom/store")
	if err != nil || !strings.Contains(fp, "/custom/store/"+refA+",/custom/store/"+refB) {
		t.Errorf("Fingerprint in /custom/store = %q, %v", fp, err)
	}
	if _, err := other.Fingerprint("/nix/store"); err == nil {
		t.Error("Fingerprint accepted a path outside the store directory")
	}
	for _, mod := range []func(*NarInfo){
		func(n *NarInfo) { n.NarSize = 0 },
		func(n *NarInfo) { n.NarHash = Hash{} },
		func(n *NarInfo) { n.NarHash = mustHash(t, "sha1:kpcd173cq987hw957sx6m0868wv3x6d9") },
		func(n *NarInfo) { n.References = []string{"bad"} },
	} {
		n := fullNarInfo(t)
		mod(n)
		if fp, err := n.Fingerprint("/nix/store"); err == nil {
			t.Errorf("Fingerprint(%+v) = %q, want error", n, fp)
		}
	}
}

func TestNarInfoSign(t *testing.T) {
	k1, err := GenerateKey("cache-1")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := GenerateKey("cache-2")
	if err != nil {
		t.Fatal(err)
	}
	n := fullNarInfo(t)
	n.Sigs = []string{"upstream:c2ln", "cache-1:stale", "cache-10:keep", "cache-1:stale-too", "last:bGFzdA=="}
	if err := n.Sign("/nix/store", k1); err != nil {
		t.Fatal(err)
	}
	fp, _ := n.Fingerprint("/nix/store")
	want := []string{"upstream:c2ln", k1.Sign(fp), "cache-10:keep", "last:bGFzdA=="}
	if !reflect.DeepEqual(n.Sigs, want) {
		t.Errorf("Sigs after Sign = %q, want %q", n.Sigs, want)
	}
	if !k1.Public().Verify(fp, n.Sigs[1]) {
		t.Error("fresh signature does not verify")
	}
	if err := n.Sign("/nix/store", k2); err != nil {
		t.Fatal(err)
	}
	if len(n.Sigs) != 5 || !k2.Public().Verify(fp, n.Sigs[4]) {
		t.Errorf("Sigs after second key = %q", n.Sigs)
	}
	bad := fullNarInfo(t)
	bad.NarSize = 0
	before := append([]string(nil), bad.Sigs...)
	if err := bad.Sign("/nix/store", k1); err == nil || !reflect.DeepEqual(bad.Sigs, before) {
		t.Errorf("Sign of unsignable narinfo = %v, sigs %q", err, bad.Sigs)
	}
}

func TestFormatCA(t *testing.T) {
	h := mustHash(t, "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=")
	h1 := mustHash(t, "sha1:kpcd173cq987hw957sx6m0868wv3x6d9")
	n32 := "1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h"
	for _, tc := range []struct {
		method string
		h      Hash
		want   string
	}{
		{"nar", h, "fixed:r:sha256:" + n32},
		{"flat", h, "fixed:sha256:" + n32},
		{"text", h, "text:sha256:" + n32},
		{"git", h1, "fixed:git:sha1:kpcd173cq987hw957sx6m0868wv3x6d9"},
		{"flat", h1, "fixed:sha1:kpcd173cq987hw957sx6m0868wv3x6d9"},
	} {
		got, err := FormatCA(tc.method, tc.h)
		if err != nil || got != tc.want {
			t.Errorf("FormatCA(%q, %s) = %q, %v; want %q", tc.method, tc.h, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		method string
		h      Hash
	}{{"recursive-ish", h}, {"", h}, {"nar", Hash{}}, {"text", h1}, {"flat", Hash{Algo: "sha256", Digest: []byte{1}}}} {
		if got, err := FormatCA(tc.method, tc.h); err == nil {
			t.Errorf("FormatCA(%q, %v) = %q, want error", tc.method, tc.h, got)
		}
	}
}
