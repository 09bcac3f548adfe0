package nix

import (
	"reflect"
	"strings"
	"testing"
)

const (
	refA = "0c6kzph7l0dcbfmjap64f0czdafn3b7x-glibc-2.35"
	refB = "n723ddjv0gffvvls2pz8j21x082g9v8p-hx.txt"
	drv  = "1nrh0zmvmlcgzpqaxj5bq0nf7syp3y8k-hx.txt.drv"
)

func mustHash(t *testing.T, s string) Hash {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func fullNarInfo(t *testing.T) *NarInfo {
	return &NarInfo{
		StorePath:   "/nix/store/" + refB,
		URL:         "nar/1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h.nar.zst",
		Compression: "zstd",
		FileHash:    mustHash(t, "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"),
		FileSize:    97,
		NarHash:     mustHash(t, "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY="),
		NarSize:     120,
		References:  []string{refB, refA},
		Deriver:     drv,
		Sigs:        []string{"cache.example.org-1:c2ln", "other:b3RoZXI="},
		CA:          "fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h",
	}
}

func TestNarInfoMarshalExact(t *testing.T) {
	got, err := fullNarInfo(t).MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	want := "StorePath: /nix/store/" + refB + "\n" +
		"URL: nar/1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h.nar.zst\n" +
		"Compression: zstd\n" +
		"FileHash: sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\n" +
		"FileSize: 97\n" +
		"NarHash: sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h\n" +
		"NarSize: 120\n" +
		"References: " + refA + " " + refB + "\n" +
		"Deriver: " + drv + "\n" +
		"Sig: cache.example.org-1:c2ln\n" +
		"Sig: other:b3RoZXI=\n" +
		"CA: fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h\n"
	if string(got) != want {
		t.Errorf("MarshalText:\n%s\nwant:\n%s", got, want)
	}
}

func TestNarInfoMarshalMinimal(t *testing.T) {
	n := fullNarInfo(t)
	n.FileHash, n.FileSize, n.References, n.Deriver, n.Sigs, n.CA = Hash{}, 0, nil, "", nil, ""
	n.Compression = "none"
	got, err := n.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	want := "StorePath: /nix/store/" + refB + "\n" +
		"URL: nar/1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h.nar.zst\n" +
		"Compression: none\n" +
		"NarHash: sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h\n" +
		"NarSize: 120\n" +
		"References: \n"
	if string(got) != want {
		t.Errorf("MarshalText:\n%q\nwant:\n%q", got, want)
	}
}

func TestNarInfoRoundTrip(t *testing.T) {
	for _, n := range []*NarInfo{fullNarInfo(t), func() *NarInfo {
		n := fullNarInfo(t)
		n.FileHash, n.FileSize, n.References, n.Deriver, n.Sigs, n.CA = Hash{}, 0, nil, "", nil, ""
		return n
	}()} {
		text, err := n.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseNarInfo(text)
		if err != nil {
			t.Fatalf("ParseNarInfo(%q): %v", text, err)
		}
		want := *n
		want.References = append([]string(nil), n.References...)
		if len(want.References) == 2 {
			want.References = []string{refA, refB}
		}
		if !reflect.DeepEqual(*back, want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", *back, want)
		}
		again, err := back.MarshalText()
		if err != nil || string(again) != string(text) {
			t.Errorf("re-marshal = %q, %v; want %q", again, err, text)
		}
	}
}

func TestParseNarInfoTolerant(t *testing.T) {
	text := "StorePath: /nix/store/" + refB + "\n" +
		"URL: nar/x.nar.xz\n" +
		"Compression: xz\n" +
		"NarHash: sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h\n" +
		"NarSize: 120\n" +
		"References:\n" +
		"Deriver: unknown-deriver\n" +
		"System: x86_64-linux\n" +
		"FutureKey: whatever: with colons\n" +
		"\n" +
		"Sig: k:c2ln" // no final newline
	n, err := ParseNarInfo([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if n.Deriver != "" || len(n.References) != 0 || n.Compression != "xz" || !reflect.DeepEqual(n.Sigs, []string{"k:c2ln"}) {
		t.Errorf("parsed %+v", n)
	}
}

func TestParseNarInfoRejects(t *testing.T) {
	base := func(drop string, extra ...string) string {
		lines := []string{
			"StorePath: /nix/store/" + refB,
			"URL: nar/x.nar",
			"Compression: none",
			"NarHash: sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h",
			"NarSize: 120",
			"References: " + refA,
		}
		var out []string
		for _, l := range lines {
			if !strings.HasPrefix(l, drop+":") {
				out = append(out, l)
			}
		}
		return strings.Join(append(out, extra...), "\n") + "\n"
	}
	if _, err := ParseNarInfo([]byte(base("-"))); err != nil {
		t.Fatalf("base narinfo rejected: %v", err)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"garbage", "\x00\x01binary junk\n", "not \"Key: value\""},
		{"html", "<html><body>404</body></html>\n", "not \"Key: value\""},
		{"colon junk", "a: b\nc: d\n", "no StorePath"},
		{"empty", "", "no StorePath"},
		{"no store path", base("StorePath"), "no StorePath"},
		{"no url", base("URL"), "no URL"},
		{"no nar hash", base("NarHash"), "no NarHash"},
		{"no nar size", base("NarSize"), "no NarSize"},
		{"zero nar size", base("NarSize", "NarSize: 0"), "NarSize 0"},
		{"bad nar size", base("NarSize", "NarSize: 12x"), "NarSize"},
		{"negative file size", base("-", "FileSize: -1"), "FileSize"},
		{"bad nar hash", base("NarHash", "NarHash: sha256:zzz"), "NarHash"},
		{"sha1 nar hash", base("NarHash", "NarHash: sha1:kpcd173cq987hw957sx6m0868wv3x6d9"), "must be sha256"},
		{"bad file hash", base("-", "FileHash: md5:abc"), "FileHash"},
		{"bad store path", base("StorePath", "StorePath: /nix/store/foo"), "hash part"},
		{"relative store path", base("StorePath", "StorePath: "+refB), "clean absolute"},
		{"bad reference", base("References", "References: foo"), "References"},
		{"bad deriver", base("-", "Deriver: /nix/store/"+drv), "Deriver"},
		{"bad sig", base("-", "Sig: nocolon"), "keyname:base64"},
		{"repeated", base("-", "URL: nar/y.nar"), "repeated key \"URL\""},
		{"no colon", base("-", "just words"), "not \"Key: value\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseNarInfo([]byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseNarInfo = %+v, %v; want error containing %q", n, err, tc.want)
			}
		})
	}
}

func TestNarInfoMarshalRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*NarInfo)
		want   string
	}{
		{"no store path", func(n *NarInfo) { n.StorePath = "" }, "no StorePath"},
		{"no url", func(n *NarInfo) { n.URL = "" }, "no URL"},
		{"no compression", func(n *NarInfo) { n.Compression = "" }, "no Compression"},
		{"no nar size", func(n *NarInfo) { n.NarSize = 0 }, "no NarSize"},
		{"no nar hash", func(n *NarInfo) { n.NarHash = Hash{} }, "NarHash"},
		{"sha1 nar hash", func(n *NarInfo) { n.NarHash = mustHash(t, "sha1:kpcd173cq987hw957sx6m0868wv3x6d9") }, "must be sha256"},
		{"bad file hash", func(n *NarInfo) { n.FileHash = Hash{Algo: "sha256", Digest: []byte{1}} }, "FileHash"},
		{"newline", func(n *NarInfo) { n.URL = "nar/x\nSig: forged:c2ln" }, "newline"},
		{"full path reference", func(n *NarInfo) { n.References = []string{"/nix/store/" + refA} }, "reference"},
		{"bad deriver", func(n *NarInfo) { n.Deriver = "x.drv" }, "deriver"},
		{"bad sig", func(n *NarInfo) { n.Sigs = []string{"nocolon"} }, "signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := fullNarInfo(t)
			tc.modify(n)
			text, err := n.MarshalText()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("MarshalText = %q, %v; want error containing %q", text, err, tc.want)
			}
		})
	}
}
