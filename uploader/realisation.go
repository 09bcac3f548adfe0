package uploader

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

// RealisationSource reads the realisations (which output path each output
// of a derivation was built to) the local store recorded. A PathInfoSource
// that also implements it lets PublishBuild publish realisations.
type RealisationSource interface {
	// Realisations returns the realisations of every output of the
	// derivation drv (a full .drv store path) that the store knows, with
	// DrvPath, OutputName and OutPath set. A derivation without any
	// (input-addressed, built without ca-derivations) gives none and no
	// error.
	Realisations(ctx context.Context, drv string) ([]nix.Realisation, error)
}

var _ RealisationSource = NixCLI{}

// unbuiltRE matches Nix's answer for a derivation output without a
// realisation (Nix 2.8: "cannot operate on an output of unbuilt
// content-addressed derivation '...'"; later: "... unbuilt derivation").
var unbuiltRE = regexp.MustCompile(`unbuilt (content-addressed )?derivation|does not have a realisation|has not been built`)

// Realisations implements RealisationSource with
// `nix realisation info --json DRV` (with the ca-derivations and
// nix-command features), which prints Nix 2.8's realisation JSON,
// {"id", "outPath", "signatures", "dependentRealisations"}; the build
// trace form of newer Nix, {"key": {"drvPath", "outputName"}, "value":
// {"outPath", "signatures"}}, is read too (it carries no Nix 2.8 id).
func (n NixCLI) Realisations(ctx context.Context, drv string) ([]nix.Realisation, error) {
	storeDir := n.storeDir()
	sp, err := nix.ParseStorePath(storeDir, drv)
	if err != nil || !strings.HasSuffix(sp.Name, ".drv") {
		return nil, fmt.Errorf("uploader: realisations: %q is not a derivation in %s", drv, storeDir)
	}
	bin := cmp.Or(n.Nix, "nix")
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, "--extra-experimental-features", "nix-command ca-derivations",
		"realisation", "info", "--json", drv)
	cmd.Env = n.Env
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: maxStderr}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("uploader: nix realisation info: %w", ctx.Err())
		}
		msg := strings.TrimSpace(ansiRE.ReplaceAllString(stderr.String(), ""))
		if unbuiltRE.MatchString(msg) {
			return nil, nil
		}
		return nil, fmt.Errorf("uploader: nix realisation info %s: %w: %s", drv, err, msg)
	}
	rs, err := parseRealisations(stdout.Bytes(), storeDir, sp.Base())
	if err != nil {
		return nil, fmt.Errorf("uploader: nix realisation info %s: %w", drv, err)
	}
	return rs, nil
}

// parseRealisations reads the output of `nix realisation info --json` for
// the derivation drvBase. Paths may be basenames (Nix 2.8) or full paths.
func parseRealisations(data []byte, storeDir, drvBase string) ([]nix.Realisation, error) {
	var raw []struct {
		ID        string            `json:"id"`
		OutPath   string            `json:"outPath"`
		Sigs      json.RawMessage   `json:"signatures"`
		Dependent map[string]string `json:"dependentRealisations"`
		Key       *struct {
			DrvPath    string `json:"drvPath"`
			OutputName string `json:"outputName"`
		} `json:"key"`
		Value *struct {
			OutPath string `json:"outPath"`
		} `json:"value"`
		OpaquePath string `json:"opaquePath"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("unexpected output: %w", err)
	}
	var out []nix.Realisation
	for _, e := range raw {
		var r nix.Realisation
		switch {
		case e.OpaquePath != "":
			continue // not a derivation output
		case e.ID != "":
			_, output, ok := strings.Cut(e.ID, "!")
			if !ok {
				return nil, fmt.Errorf("realisation id %q has no output name", e.ID)
			}
			r = nix.Realisation{DrvPath: drvBase, OutputName: output, OutPath: baseOf(storeDir, e.OutPath), ID: e.ID, Dependent: map[string]string{}}
			for id, p := range e.Dependent {
				r.Dependent[id] = baseOf(storeDir, p)
			}
			// Nix 2.8 prints its signatures as strings; they sign its own
			// fingerprint, so they stay with that layout.
			var sigs []string
			if len(e.Sigs) > 0 && json.Unmarshal(e.Sigs, &sigs) == nil {
				r.Signatures = sigs
			}
		case e.Key != nil && e.Value != nil:
			r = nix.Realisation{DrvPath: baseOf(storeDir, e.Key.DrvPath), OutputName: e.Key.OutputName, OutPath: baseOf(storeDir, e.Value.OutPath)}
		default:
			return nil, fmt.Errorf("unexpected realisation %s", data)
		}
		if err := r.Validate(); err != nil {
			return nil, err
		}
		for _, base := range append([]string{r.DrvPath, r.OutPath}, slices.Collect(maps.Values(r.Dependent))...) {
			if _, err := nix.ParseStorePath(storeDir, storeDir+"/"+base); err != nil {
				return nil, fmt.Errorf("realisation of %s: %w", drvBase, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// baseOf turns a full store path into its basename and leaves anything
// else (a basename, or garbage for ParseStorePath to refuse) as it is.
func baseOf(storeDir, p string) string {
	return strings.TrimPrefix(p, storeDir+"/")
}
