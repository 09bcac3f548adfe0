//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binaries are the programs under test, built once by TestMain.
type binaries struct {
	nixs3q string
	hook   string
	// goCache is the Go build cache, for scripts that build the binaries
	// themselves under an environment with a private XDG_CACHE_HOME.
	goCache string
}

// bin is set by TestMain before any test runs and never changed after.
var bin binaries

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nixs3q-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceBuild {
		args = append(args, "-race")
		// A race-enabled program sleeps a second before it exits, by
		// default, which would count against the hook's time bound and
		// slow every CLI call. The programs inherit this.
		if err := os.Setenv("GORACE", "atexit_sleep_ms=0"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	cmd := exec.Command("go", append(args, "./cmd/nixs3q", "./cmd/nixs3q-hook")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building the binaries: %v\n%s", err, out)
		return 1
	}
	goCache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go env GOCACHE:", err)
		return 1
	}
	bin = binaries{
		nixs3q:  filepath.Join(dir, "nixs3q"),
		hook:    filepath.Join(dir, "nixs3q-hook"),
		goCache: strings.TrimSpace(string(goCache)),
	}
	return m.Run()
}
