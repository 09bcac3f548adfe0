//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/nix"
)

// exprText is the Nix expression the suite builds. Every derivation takes
// the nonce, so each run builds new store paths. Builders have no PATH and
// use absolute tool paths.
//
//   - a -> b -> c is a chain of real runtime references: b's file names c's
//     path, a holds b's path in a file and an absolute symlink into c.
//   - c is a tree: an executable, a relative symlink, random (binary) data,
//     bytes that are not text, an empty file and nested directories.
//   - multi has outputs out and dev; dev refers to out, out to itself.
//   - big is 20 MiB of random data, large enough for a multipart upload.
const exprText = `{ nonce }:
let
  mk = name: script: attrs: derivation ({
    inherit name nonce;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
  } // attrs);
  c = mk "e2e-c" ''
    /bin/mkdir -p $out/bin $out/share/deep/er
    /usr/bin/printf '#!/bin/sh\necho "e2e tool %s"\n' "$nonce" > $out/bin/tool
    /bin/chmod 0755 $out/bin/tool
    /bin/ln -s tool $out/bin/tool-link
    /usr/bin/head -c 262144 /dev/urandom > $out/share/random.bin
    /usr/bin/printf '\000\001\002\377\376 not text %s\n' "$nonce" > $out/share/deep/er/bytes.bin
    : > $out/share/empty
  '' {};
  b = mk "e2e-b" ''/bin/echo "b $nonce runs ${c}/bin/tool" > $out'' {};
  a = mk "e2e-a" ''
    /bin/mkdir -p $out
    /bin/echo "a $nonce needs ${b}" > $out/needs
    /bin/ln -s ${c}/bin/tool $out/tool
  '' {};
  multi = mk "e2e-multi" ''
    /bin/mkdir -p $out/bin $dev/nix-support
    /usr/bin/printf '#!/bin/sh\necho "hello from %s"\n' "$out" > $out/bin/hello
    /bin/chmod 0555 $out/bin/hello
    /bin/echo "$out" > $dev/nix-support/propagated
  '' { outputs = [ "out" "dev" ]; };
  big = mk "e2e-big" ''
    /bin/mkdir -p $out
    /usr/bin/head -c 20971520 /dev/urandom > $out/random.bin
    /bin/echo "$nonce" > $out/nonce
  '' {};
in {
  all = [ a multi multi.dev ];
  withBig = [ a multi multi.dev big ];
  small = [ b ];
  single = c;
}
`

// nixTool runs Nix with the suite's environment: testenv's settings (no
// substituters, no sandbox, no build users) and a private cache directory,
// so that Nix's narinfo disk cache of one test never answers for another.
type nixTool struct {
	env []string
	dir string // scratch directory: expression, fresh stores
}

func newNixTool(t *testing.T) *nixTool {
	t.Helper()
	env := testenv.RequireNix(t)
	dir := t.TempDir()
	env = append(env, "XDG_CACHE_HOME="+filepath.Join(dir, "xdg-cache"))
	return &nixTool{env: env, dir: dir}
}

// run runs a Nix command and returns its stdout; it fails the test when the
// command fails.
func (n *nixTool) run(t *testing.T, ctx context.Context, name string, args ...string) string {
	t.Helper()
	out, errOut, err := n.try(ctx, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errOut)
	}
	return out
}

// try runs a Nix command with extra environment and returns stdout, stderr
// and the error.
func (n *nixTool) try(ctx context.Context, extraEnv []string, name string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(slices.Clone(n.env), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// newNonce returns a random string that makes every run's paths new.
func newNonce(t *testing.T) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// hookSetup is how a build hands its outputs to nixs3q.
type hookSetup struct {
	socket, stateDir string
}

// build builds attr of the suite's expression with the nixs3q hook as
// post-build-hook and returns the paths nix-build printed.
func (n *nixTool) build(t *testing.T, ctx context.Context, nonce, attr string, h hookSetup) []string {
	t.Helper()
	defer timed(t, "nix-build -A "+attr+" with the hook")()
	file := filepath.Join(n.dir, "e2e.nix")
	if err := os.WriteFile(file, []byte(exprText), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := n.try(ctx, []string{"NIXS3Q_SOCKET=" + h.socket, "NIXS3Q_STATE_DIR=" + h.stateDir},
		"nix-build", file, "--argstr", "nonce", nonce, "-A", attr, "--no-out-link",
		"--option", "post-build-hook", bin.hook)
	if err != nil {
		t.Fatalf("nix-build: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "running post-build-hook") {
		t.Fatalf("nix-build did not run the post-build-hook:\n%s", errOut)
	}
	paths := strings.Fields(out)
	if len(paths) == 0 {
		t.Fatalf("nix-build printed no paths:\n%s", errOut)
	}
	return paths
}

// closure returns the closure of roots in the local store, sorted.
func (n *nixTool) closure(t *testing.T, ctx context.Context, roots []string) []string {
	t.Helper()
	paths := strings.Fields(n.run(t, ctx, "nix-store", append([]string{"-qR"}, roots...)...))
	slices.Sort(paths)
	return paths
}

// localInfo is what the local store records about a path.
type localInfo struct {
	Path       string   `json:"path"`
	NarHash    string   `json:"narHash"`
	NarSize    uint64   `json:"narSize"`
	References []string `json:"references"`
}

// pathInfo reads the local store's metadata of paths.
func (n *nixTool) pathInfo(t *testing.T, ctx context.Context, paths []string) map[string]localInfo {
	t.Helper()
	out := n.run(t, ctx, "nix", append([]string{"path-info", "--json"}, paths...)...)
	var infos []localInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatalf("nix path-info --json: %v", err)
	}
	m := make(map[string]localInfo, len(infos))
	for _, in := range infos {
		m[in.Path] = in
	}
	for _, p := range paths {
		if _, ok := m[p]; !ok {
			t.Fatalf("nix path-info did not report %s", p)
		}
	}
	return m
}

// keyPair is a Nix signing key written to a file, and its public half.
type keyPair struct {
	secretFile string
	public     nix.PublicKey
}

// generateKey makes a signing key with Nix's own tool.
func (n *nixTool) generateKey(t *testing.T, ctx context.Context, name string) keyPair {
	t.Helper()
	sk := n.run(t, ctx, "nix", "key", "generate-secret", "--key-name", name)
	file := filepath.Join(t.TempDir(), name+".sec")
	if err := os.WriteFile(file, []byte(sk), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "nix", "key", "convert-secret-to-public")
	cmd.Env = n.env
	cmd.Stdin = strings.NewReader(sk)
	pkText, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix key convert-secret-to-public: %v", err)
	}
	pk, err := nix.ParsePublicKey(string(pkText))
	if err != nil {
		t.Fatalf("public key from Nix: %v", err)
	}
	return keyPair{secretFile: file, public: pk}
}

// substitute copies the closure of roots from the cache at cacheURL into a
// fresh store with Nix, requiring signatures by trusted, and returns the
// fresh store's URL.
func (n *nixTool) substitute(t *testing.T, ctx context.Context, cacheURL string, trusted nix.PublicKey, roots []string) string {
	t.Helper()
	defer timed(t, "nix copy from the cache into a fresh store")()
	root, err := os.MkdirTemp(n.dir, "fresh-store-")
	if err != nil {
		t.Fatal(err)
	}
	store := "local?root=" + root
	n.run(t, ctx, "nix", append([]string{"copy", "--from", cacheURL, "--to", store,
		"--option", "trusted-public-keys", trusted.String(), "--option", "require-sigs", "true"}, roots...)...)
	return store
}

// refuseWrongKey requires that Nix refuses to substitute from the cache when
// it trusts only a different key.
func (n *nixTool) refuseWrongKey(t *testing.T, ctx context.Context, cacheURL string, roots []string) {
	t.Helper()
	other, err := nix.GenerateKey("e2e-untrusted-1")
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.MkdirTemp(n.dir, "fresh-store-")
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, err := n.try(ctx, nil, "nix", append([]string{"copy", "--from", cacheURL, "--to", "local?root=" + root,
		"--option", "trusted-public-keys", other.Public().String(), "--option", "require-sigs", "true"}, roots...)...)
	if err == nil {
		t.Fatalf("nix copy succeeded although the cache's key is not trusted:\n%s", errOut)
	}
	if !strings.Contains(errOut, "signature") {
		t.Fatalf("nix copy failed without mentioning signatures: %v\n%s", err, errOut)
	}
	t.Logf("untrusted key refused as expected: %s", lastLine(errOut))
}

// compareStores requires that every path is in store with the same
// references and a NAR serialisation identical to the local store's.
func (n *nixTool) compareStores(t *testing.T, ctx context.Context, store string, roots, paths []string) {
	t.Helper()
	defer timed(t, "comparing the substituted paths with the originals")()
	got := strings.Fields(n.run(t, ctx, "nix-store", append([]string{"--store", store, "-qR"}, roots...)...))
	slices.Sort(got)
	if !slices.Equal(got, paths) {
		t.Fatalf("closure in the fresh store:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(paths, "\n"))
	}
	for _, p := range paths {
		want := sha256.Sum256([]byte(n.run(t, ctx, "nix-store", "--dump", p)))
		have := sha256.Sum256([]byte(n.run(t, ctx, "nix-store", "--store", store, "--dump", p)))
		if want != have {
			t.Errorf("%s: substituted copy differs from the original (NAR sha256 %x, want %x)", p, have, want)
		}
		wantRefs := n.run(t, ctx, "nix-store", "-q", "--references", p)
		haveRefs := n.run(t, ctx, "nix-store", "--store", store, "-q", "--references", p)
		if sortedFields(wantRefs) != sortedFields(haveRefs) {
			t.Errorf("%s: references in the fresh store %q, want %q", p, haveRefs, wantRefs)
		}
	}
}

func sortedFields(s string) string {
	f := strings.Fields(s)
	slices.Sort(f)
	return strings.Join(f, " ")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// addFiles writes count files of size random bytes and adds them all to the
// store with one `nix-store --add`. It returns the store paths.
func (n *nixTool) addFiles(t *testing.T, ctx context.Context, nonce string, count, size int) []string {
	t.Helper()
	defer timed(t, "nix-store --add of the files")()
	dir := filepath.Join(n.dir, "files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--add"}
	buf := make([]byte, size)
	for i := range count {
		if _, err := rand.Read(buf); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "e2e-blob-"+nonce+"-"+strconv.Itoa(i))
		if err := os.WriteFile(f, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
	}
	paths := strings.Fields(n.run(t, ctx, "nix-store", args...))
	if len(paths) != count {
		t.Fatalf("nix-store --add gave %d paths, want %d", len(paths), count)
	}
	os.RemoveAll(dir)
	return paths
}

// deletePaths removes paths the suite added from the store again, so that
// repeated runs do not fill it. Failure (a path still in use) is only
// logged.
func (n *nixTool) deletePaths(t *testing.T, paths []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, errOut, err := n.try(ctx, nil, "nix-store", append([]string{"--delete"}, paths...)...); err != nil {
		t.Logf("nix-store --delete of %d paths: %v: %s", len(paths), err, lastLine(errOut))
		return
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			t.Logf("nix-store --delete left %s", p)
		}
	}
}
