package uploader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/nix"
)

func nonce(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func runNix(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// addToStore adds fresh files and directories to the real store and builds
// a derivation whose output references one of them.
func addToStore(t testing.TB, env []string) (file, dir, out, dep string) {
	t.Helper()
	tmp := t.TempDir()
	n := nonce(t)
	f := filepath.Join(tmp, "nixs3q-test-file-"+n)
	if err := os.WriteFile(f, []byte("file "+n+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(tmp, "nixs3q-test-dir-"+n)
	for name, content := range map[string]string{"a": "a " + n, "sub/b": "b", "sub/x": "#!/bin/sh\n"} {
		p := filepath.Join(d, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(d, "sub/x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/b", filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	file = runNix(t, env, "nix-store", "--add", f)
	dir = runNix(t, env, "nix-store", "--add", d)
	expr := `let dep = builtins.toFile "nixs3q-test-dep-` + n + `" "dep ` + n + `"; in
derivation {
  name = "nixs3q-test-out-` + n + `";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "/bin/echo ${dep} > $out" ];
}`
	out = runNix(t, env, "nix-build", "--no-out-link", "-E", expr)
	refs := strings.Fields(runNix(t, env, "nix-store", "--query", "--references", out))
	if len(refs) != 1 {
		t.Fatalf("%s references %v, want one path", out, refs)
	}
	return file, dir, out, refs[0]
}

func TestNixCLIGolden(t *testing.T) {
	env := testenv.RequireNix(t)
	file, dir, out, dep := addToStore(t, env)
	src := NixCLI{Env: env}
	ctx := context.Background()

	for _, closure := range []bool{false, true} {
		infos, err := src.PathInfo(ctx, []string{file, dir, out}, closure)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, info := range infos {
			got = append(got, info.Path)
		}
		want := []string{file, dir, out}
		if closure {
			want = append(want, dep)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("closure=%v: paths %v, want %v", closure, got, want)
		}
		for _, info := range infos {
			checkAgainstNixStore(t, env, info)
		}
	}

	// Batches of one: the closures of out and of dep overlap in dep, which
	// is reported once.
	batched := NixCLI{Env: env, BatchSize: 1}
	infos, err := batched.PathInfo(ctx, []string{out, dep}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Path == infos[1].Path {
		t.Errorf("batched closure %+v", infos)
	}
}

// checkAgainstNixStore compares info with what nix-store --query prints.
func checkAgainstNixStore(t *testing.T, env []string, info PathInfo) {
	t.Helper()
	if h := runNix(t, env, "nix-store", "--query", "--hash", info.Path); h != info.NarHash.String() {
		t.Errorf("%s: NarHash %s, nix-store says %s", info.Path, info.NarHash, h)
	}
	size, err := strconv.ParseUint(runNix(t, env, "nix-store", "--query", "--size", info.Path), 10, 64)
	if err != nil || size != info.NarSize {
		t.Errorf("%s: NarSize %d, nix-store says %d (%v)", info.Path, info.NarSize, size, err)
	}
	refs := strings.Fields(runNix(t, env, "nix-store", "--query", "--references", info.Path))
	slices.Sort(refs)
	if !slices.Equal(refs, info.References) && !(len(refs) == 0 && len(info.References) == 0) {
		t.Errorf("%s: references %v, nix-store says %v", info.Path, info.References, refs)
	}
	deriver := runNix(t, env, "nix-store", "--query", "--deriver", info.Path)
	if deriver == "unknown-deriver" {
		deriver = ""
	}
	if deriver != info.Deriver {
		t.Errorf("%s: deriver %q, nix-store says %q", info.Path, info.Deriver, deriver)
	}
	// Our own NAR writer must agree with the store's record.
	h, n := dumpHash(t, info.Path)
	if !h.Equal(info.NarHash) || n != info.NarSize {
		t.Errorf("%s: DumpPath gives %s/%d, store records %s/%d", info.Path, h, n, info.NarHash, info.NarSize)
	}
	if strings.HasPrefix(filepath.Base(info.Path)[33:], "nixs3q-test-file-") ||
		strings.HasPrefix(filepath.Base(info.Path)[33:], "nixs3q-test-dir-") {
		if want := "fixed:r:" + info.NarHash.String(); info.CA != want {
			t.Errorf("%s: CA %q, want %q", info.Path, info.CA, want)
		}
	}
}

func TestNixCLIGoneGolden(t *testing.T) {
	env := testenv.RequireNix(t)
	src := NixCLI{Env: env}
	ctx := context.Background()
	file, _, _, _ := addToStore(t, env)
	runNix(t, env, "nix-store", "--delete", file)
	for _, closure := range []bool{false, true} {
		if _, err := src.PathInfo(ctx, []string{file}, closure); !errors.Is(err, ErrPathGone) {
			t.Errorf("deleted path, closure=%v: error %v, want ErrPathGone", closure, err)
		}
	}

	// A directory in the store that Nix does not know: os.Lstat finds it,
	// so only Nix's answer tells (invalid in JSON without --recursive, an
	// error with it).
	stray := filepath.Join(nix.DefaultStoreDir, hashPart("stray-"+nonce(t))+"-nixs3q-test-stray")
	if err := os.Mkdir(stray, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(stray) })
	for _, closure := range []bool{false, true} {
		_, err := src.PathInfo(ctx, []string{stray}, closure)
		if !errors.Is(err, ErrPathGone) || !strings.Contains(err.Error(), stray) {
			t.Errorf("unregistered path, closure=%v: error %v, want ErrPathGone naming it", closure, err)
		}
	}
}
