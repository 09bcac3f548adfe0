package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The hook runs after every build and Nix waits for it, so it must stay
// small: the standard library and the hook package only.
func TestHookLinksOnlyStdlibAndHook(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "github.com/nixs3q/nixs3q/hook", "github.com/nixs3q/nixs3q/cmd/nixs3q-hook":
		default:
			t.Errorf("nixs3q-hook depends on %s", pkg)
		}
	}
}
