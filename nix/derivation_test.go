package nix

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

func TestParseDerivationOutputs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []DerivationOutput
		ok   bool
	}{
		{`Derive([("dev","/nix/store/d-x-dev","",""),("out","/nix/store/o-x","","")],[],[],"x","/bin/sh",[],[])`,
			[]DerivationOutput{{"dev", "/nix/store/d-x-dev", ""}, {"out", "/nix/store/o-x", ""}}, true},
		{`Derive([("out","","r:sha256","")],[],[],"x","/bin/sh",[],[])`, []DerivationOutput{{"out", "", "r:sha256"}}, true},
		{`Derive([("out","/nix/store/a\"b","","")],`, []DerivationOutput{{"out", `/nix/store/a"b`, ""}}, true},
		{`Derive([],[])`, nil, true},
		{`{"json": true}`, nil, false},
		{`Derive([("out","/x",""`, nil, false},
		{`Derive([("out")])`, nil, false},
	} {
		got, err := parseDerivationOutputs(bufio.NewReader(strings.NewReader(tc.in)))
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && len(got) != len(tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.in, got, tc.want)
			continue
		}
		for i := range tc.want {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %+v, want %+v", tc.in, got, tc.want)
			}
		}
	}
}

// TestReadDerivationOutputsGolden reads derivations Nix wrote: an
// input-addressed one with two outputs and a content-addressed one.
func TestReadDerivationOutputsGolden(t *testing.T) {
	env := testenv.RequireNix(t)
	expr := `{
  ia = derivation { name = "nixs3q-drv-ia"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" ]; };
  ca = derivation { name = "nixs3q-drv-ca"; system = "x86_64-linux"; builder = "/bin/sh";
    __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; };
}`
	file := filepath.Join(t.TempDir(), "drv.nix")
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	inst := func(attr string) string {
		cmd := exec.Command("nix-instantiate", "--extra-experimental-features", "ca-derivations", file, "-A", attr)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("nix-instantiate -A %s: %v", attr, err)
		}
		return strings.TrimSpace(string(out))
	}
	ia, err := ReadDerivationOutputs(inst("ia"))
	if err != nil || len(ia) != 2 || ia[0].Name != "dev" || ia[1].Name != "out" ||
		!strings.HasSuffix(ia[0].Path, "-nixs3q-drv-ia-dev") || ia[1].HashAlgo != "" {
		t.Errorf("input-addressed: %+v, %v", ia, err)
	}
	ca, err := ReadDerivationOutputs(inst("ca"))
	if err != nil || len(ca) != 1 || ca[0].Name != "out" || ca[0].Path != "" || ca[0].HashAlgo != "r:sha256" {
		t.Errorf("content-addressed: %+v, %v", ca, err)
	}
	if _, err := ReadDerivationOutputs(file); err == nil {
		t.Error("a Nix expression read as a derivation")
	}
}
