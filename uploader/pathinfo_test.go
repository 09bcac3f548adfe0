package uploader

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

func mustHash(t *testing.T, s string) nix.Hash {
	t.Helper()
	h, err := nix.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Every fixture in testdata/pathinfo describes the same store objects in the
// shape of one Nix version.
func TestParsePathInfoJSONShapes(t *testing.T) {
	const (
		store = "/nix/store"
		foo   = store + "/n5wkd9frr45pa74if5gpz9j7mifg27fh-foo"
		bar   = store + "/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar"
		drv   = store + "/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv"
		gone  = store + "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-gone"
	)
	sig0 := "cache.example.org-1:" + base64.StdEncoding.EncodeToString(make([]byte, 64))
	sig1 := "upstream-1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 64))
	want := []PathInfo{
		{
			Path:    bar,
			NarHash: mustHash(t, "sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h"),
			NarSize: 120,
			CA:      "fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h",
		},
		{
			Path:       foo,
			NarHash:    mustHash(t, "sha256:09ymwqf5i9q7d4dm7x4pjjcqqj0qrcp5lnznbh42gfsci5hcbqqm"),
			NarSize:    34878,
			References: []string{bar, foo},
			Deriver:    drv,
			Sigs:       []string{sig0, sig1},
		},
	}
	tests := []struct {
		file        string
		wantInvalid []string
	}{
		{"nix-2.3-array-nix32.json", []string{gone}},
		{"nix-2.8-array.json", []string{gone}},
		{"nix-2.19-map.json", []string{gone}},
		{"store-object-v2.json", []string{gone}},
		{"store-object-v3.json", []string{gone}},
		{"hash-object-variants.json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "pathinfo", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, invalid, err := parsePathInfoJSON(data, store)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parsed\n%+v\nwant\n%+v", got, want)
			}
			if !reflect.DeepEqual(invalid, tt.wantInvalid) {
				t.Errorf("invalid %v, want %v", invalid, tt.wantInvalid)
			}
		})
	}
}

func TestParsePathInfoJSONRejects(t *testing.T) {
	const p = "/nix/store/n5wkd9frr45pa74if5gpz9j7mifg27fh-foo"
	const h = `"sha256-FePFYIlMuycIXPZbWi7LGEiMmZSX9FMbaQenWBzm1Sc="`
	tests := []struct{ name, json, want string }{
		{"empty", ``, "empty output"},
		{"not JSON", `error: oops`, "neither a JSON array nor an object"},
		{"truncated", `[{"path":"` + p + `"`, "parse JSON"},
		{"other store dir", `{"` + p + `":{"storeDir":"/gnu/store","narHash":` + h + `,"narSize":1,"references":[]}}`, "store directory is /gnu/store"},
		{"path outside store", `[{"path":"/tmp/n5wkd9frr45pa74if5gpz9j7mifg27fh-foo","narHash":` + h + `,"narSize":1}]`, "not in the store directory"},
		{"key and path differ", `{"` + p + `":{"path":"/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar","narHash":` + h + `,"narSize":1}}`, "says path"},
		{"no narHash", `[{"path":"` + p + `","narSize":1}]`, "no narHash"},
		{"no narSize", `[{"path":"` + p + `","narHash":` + h + `}]`, "no narSize"},
		{"sha1 narHash", `[{"path":"` + p + `","narHash":"sha1:0000000000000000000000000000000000000000","narSize":1}]`, "not sha256"},
		{"bad hash", `[{"path":"` + p + `","narHash":"sha256-xyz","narSize":1}]`, "narHash"},
		{"hash object without digest", `[{"path":"` + p + `","narHash":{"algorithm":"sha256"},"narSize":1}]`, "without a digest"},
		{"hash object unknown format", `[{"path":"` + p + `","narHash":{"algorithm":"sha256","format":"base58","hash":"x"},"narSize":1}]`, "unknown format"},
		{"bad reference", `[{"path":"` + p + `","narHash":` + h + `,"narSize":1,"references":["not-a-store-path"]}]`, "reference"},
		{"bad signature", `[{"path":"` + p + `","narHash":` + h + `,"narSize":1,"signatures":["nocolon"]}]`, "signature"},
		{"bad signature object", `[{"path":"` + p + `","narHash":` + h + `,"narSize":1,"signatures":[{"keyName":"k"}]}]`, "signature"},
		{"unknown ca method", `[{"path":"` + p + `","narHash":` + h + `,"narSize":1,"ca":{"method":"ipfs","hash":` + h + `}}]`, "unknown method"},
		{"ca object without hash", `[{"path":"` + p + `","narHash":` + h + `,"narSize":1,"ca":{"method":"nar"}}]`, "without a hash"},
		{"null in array", `[null]`, "without a path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parsePathInfoJSON([]byte(tt.json), "/nix/store")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseJSONCA(t *testing.T) {
	const sri = "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY="
	const n32 = "1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h"
	tests := []struct{ json, want string }{
		{`null`, ""},
		{`"fixed:r:sha256:` + n32 + `"`, "fixed:r:sha256:" + n32},
		{`"text:sha256:` + n32 + `"`, "text:sha256:" + n32},
		{`{"method":"nar","hash":"` + sri + `"}`, "fixed:r:sha256:" + n32},
		{`{"method":"flat","hash":"` + sri + `"}`, "fixed:sha256:" + n32},
		{`{"method":"text","hash":"` + sri + `"}`, "text:sha256:" + n32},
		{`{"method":"git","hash":"` + sri + `"}`, "fixed:git:sha256:" + n32},
		{`{"method":"flat","hash":{"algorithm":"sha256","format":"nix32","hash":"` + n32 + `"}}`, "fixed:sha256:" + n32},
		{`{"method":"nar","hash":{"algorithm":"sha256","format":"sri","hash":"` + sri + `"}}`, "fixed:r:sha256:" + n32},
	}
	for _, tt := range tests {
		got, err := parseJSONCA(json.RawMessage(tt.json))
		if err != nil || got != tt.want {
			t.Errorf("parseJSONCA(%s) = %q, %v; want %q", tt.json, got, err, tt.want)
		}
	}
}

// fakeNix writes a script standing in for nix: it logs its arguments to
// log (one line per run) and prints, in the array form of Nix 2.8, one valid
// object per store path argument without references. A path argument
// containing "-invalid" is reported {"valid": false}; one containing
// "-fatal" makes it fail as Nix does with --recursive (here with the colour
// codes Nix uses on a terminal).
func fakeNix(t *testing.T, log string) string {
	t.Helper()
	script := `#!/bin/sh
echo "$*" >> ` + log + `
out="["
sep=""
for a in "$@"; do
  case "$a" in
  *-fatal) printf "error: path '\033[35;1m%s\033[0m' is not valid\n" "$a" >&2; exit 1 ;;
  *-invalid) out="$out$sep{\"path\":\"$a\",\"valid\":false}" ;;
  /*) out="$out$sep{\"path\":\"$a\",\"narHash\":\"sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY=\",\"narSize\":120,\"references\":[]}" ;;
  *) continue ;;
  esac
  sep=","
done
echo "$out]"
`
	p := filepath.Join(t.TempDir(), "nix")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNixCLIBatches(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	var paths []string
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		p := filepath.Join(store, hashPart(name)+"-"+name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	log := filepath.Join(dir, "log")
	src := NixCLI{Nix: fakeNix(t, log), StoreDir: store, BatchSize: 2}
	// Duplicates are asked once and reported once.
	infos, err := src.PathInfo(context.Background(), append(paths, paths[0], paths[3]), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(paths) {
		t.Fatalf("%d infos for %d paths", len(infos), len(paths))
	}
	if !slices.IsSortedFunc(infos, func(a, b PathInfo) int { return strings.Compare(a.Path, b.Path) }) {
		t.Errorf("results not sorted")
	}
	for _, info := range infos {
		if info.NarSize != 120 {
			t.Errorf("%+v", info)
		}
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	runs := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(runs) != 3 {
		t.Errorf("%d runs for 5 paths in batches of 2: %q", len(runs), runs)
	}
	for _, run := range runs {
		if !strings.HasPrefix(run, "--extra-experimental-features nix-command path-info --json --recursive /") {
			t.Errorf("ran nix %s", run)
		}
	}
}

func TestNixCLIPathGone(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	mk := func(name string) string {
		p := filepath.Join(store, hashPart(name)+"-"+name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := mk("ok")
	invalid := mk("x-invalid")
	fatal := mk("x-fatal")
	missing := filepath.Join(store, hashPart("missing")+"-missing")
	src := NixCLI{Nix: fakeNix(t, filepath.Join(dir, "log")), StoreDir: store}
	tests := []struct {
		name  string
		paths []string
		gone  string
	}{
		{"not on disk", []string{ok, missing}, missing},
		{"reported invalid", []string{ok, invalid}, invalid},
		{"nix fails", []string{fatal, ok}, fatal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := src.PathInfo(context.Background(), tt.paths, true)
			if !errors.Is(err, ErrPathGone) || !strings.Contains(err.Error(), tt.gone) {
				t.Errorf("error %v, want ErrPathGone naming %s", err, tt.gone)
			}
			if err != nil && strings.ContainsRune(err.Error(), '\x1b') {
				t.Errorf("error %q keeps terminal colour codes", err)
			}
		})
	}
	if _, err := src.PathInfo(context.Background(), []string{"/elsewhere/" + hashPart("x") + "-x"}, false); err == nil || errors.Is(err, ErrPathGone) {
		t.Errorf("path outside the store: error %v", err)
	}
	bad := NixCLI{Nix: filepath.Join(dir, "no-such-nix"), StoreDir: store}
	if _, err := bad.PathInfo(context.Background(), []string{ok}, false); err == nil || errors.Is(err, ErrPathGone) {
		t.Errorf("missing nix binary: error %v", err)
	}
}

// A nix that never answers (a wedged nix-daemon) does not hold a worker
// forever: the call gives up after the timeout with an error that says so.
func TestNixCLITimeout(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "nix")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec /bin/sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	os.MkdirAll(store, 0o755)
	p := filepath.Join(store, strings.Repeat("0", 32)+"-x")
	os.WriteFile(p, nil, 0o644)
	start := time.Now()
	_, err := NixCLI{Nix: script, StoreDir: store, Timeout: 200 * time.Millisecond}.PathInfo(context.Background(), []string{p}, true)
	if err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("gave up after %v", took)
	}
}
