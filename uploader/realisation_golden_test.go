package uploader

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

// TestNixCLIRealisationsGolden reads realisations from real Nix: a
// content-addressed derivation built with ca-derivations has one for its
// output; an input-addressed one built without the feature has none, and
// that is not an error.
func TestNixCLIRealisationsGolden(t *testing.T) {
	env := testenv.RequireNix(t)
	n := nonce(t)
	mk := func(name, extra string) string {
		return `derivation {
  name = "` + name + `-` + n + `";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "/bin/echo ` + n + ` > $out" ];
` + extra + `}`
	}
	ca := runNix(t, env, "nix-build", "--no-out-link", "--extra-experimental-features", "ca-derivations",
		"-E", mk("nixs3q-test-ca", `__contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";`))
	ia := runNix(t, env, "nix-build", "--no-out-link", "-E", mk("nixs3q-test-ia", ""))
	caDrv := runNix(t, env, "nix-store", "-q", "--deriver", ca)
	iaDrv := runNix(t, env, "nix-store", "-q", "--deriver", ia)
	t.Cleanup(func() {
		runNix(t, env, "nix-store", "--delete", ca, ia)
	})

	src := NixCLI{Env: env}
	rs, err := src.Realisations(context.Background(), caDrv)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("realisations of %s: %+v, want one", caDrv, rs)
	}
	r := rs[0]
	if r.DrvPath != filepath.Base(caDrv) || r.OutputName != "out" || r.OutPath != filepath.Base(ca) ||
		!strings.HasPrefix(r.ID, "sha256:") || !strings.HasSuffix(r.ID, "!out") {
		t.Errorf("realisation %+v does not describe %s -> %s", r, caDrv, ca)
	}
	if rs, err := src.Realisations(context.Background(), iaDrv); err != nil || len(rs) != 0 {
		t.Errorf("input-addressed %s: %+v, %v; want none and no error", iaDrv, rs, err)
	}
	if _, err := src.Realisations(context.Background(), ca); err == nil {
		t.Error("a non-derivation was accepted")
	}
}
