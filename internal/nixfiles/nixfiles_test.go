package nixfiles

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

// repoRoot returns the module's root directory, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	if !bytes.HasPrefix(mod, []byte("module github.com/nixs3q/nixs3q\n")) {
		t.Fatalf("%s/go.mod is not the nixs3q module", root)
	}
	return root
}

// nixFiles lists every .nix file in the repository, relative to root.
func nixFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "vendor" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".nix") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestEveryNixFileParses(t *testing.T) {
	env := testenv.RequireNix(t)
	root := repoRoot(t)
	files := nixFiles(t, root)
	found := make(map[string]bool, len(files))
	for _, f := range files {
		found[f] = true
	}
	// The walk must see at least the files the project is built from.
	for _, f := range []string{"flake.nix", "nixos-module/default.nix", "nixos-module/test.nix"} {
		if !found[f] {
			t.Errorf("%s not found among the repository's .nix files %v", f, files)
		}
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), "nix-instantiate", "--parse", filepath.Join(root, f))
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("nix-instantiate --parse %s: %v\n%s", f, err, out)
			}
		})
	}
}

// TestVendorHashIsCurrent fails when go.mod, go.sum or the imports changed
// and flake.nix's vendorHash was not refreshed.
func TestVendorHashIsCurrent(t *testing.T) {
	env := testenv.RequireNix(t)
	root := repoRoot(t)
	cmd := exec.CommandContext(t.Context(), "bash", filepath.Join(root, "scripts", "vendor-hash.sh"), "--check")
	cmd.Dir = root
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/vendor-hash.sh --check: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "vendor")); err == nil {
		t.Error("scripts/vendor-hash.sh left a vendor/ directory in the work tree")
	}
}

// TestFlakeSubPackagesExist keeps flake.nix's subPackages in step with cmd/.
func TestFlakeSubPackagesExist(t *testing.T) {
	root := repoRoot(t)
	flake, err := os.ReadFile(filepath.Join(root, "flake.nix"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`subPackages = \[([^\]]*)\];`).FindSubmatch(flake)
	if m == nil {
		t.Fatal("flake.nix has no subPackages list")
	}
	pkgs := regexp.MustCompile(`"([^"]+)"`).FindAllSubmatch(m[1], -1)
	var names []string
	for _, p := range pkgs {
		dir := string(p[1])
		names = append(names, filepath.Base(dir))
		if _, err := os.Stat(filepath.Join(root, dir, "main.go")); err != nil {
			t.Errorf("flake.nix subPackages names %s: %v", dir, err)
		}
	}
	// The module runs bin/nixs3q and sets bin/nixs3q-hook as post-build-hook.
	if strings.Join(names, " ") != "nixs3q nixs3q-hook" {
		t.Errorf("flake.nix builds %v, want nixs3q and nixs3q-hook", names)
	}
}
