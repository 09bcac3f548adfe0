package nix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Realisation records which store path one output of a derivation was
// built to: what a client with the ca-derivations feature needs from a
// binary cache to substitute a content-addressed output without building.
// Binary caches hold it in two layouts:
//
//   - Nix 2.8 to 2.34: "realisations/<id>.doi", where the id is
//     "sha256:<hex hash modulo of the derivation>!<output>", holding
//     {"dependentRealisations":{...},"id":...,"outPath":...,"signatures":[...]}.
//     Signatures are "key:base64" over that object without "signatures",
//     serialised compactly with sorted keys.
//   - Nix 2.35 and later (the build trace): "build-trace-v2/<drv
//     basename>/<output>.doi", holding {"outPath":...,"signatures":[{"keyName":...,"sig":...}]}.
//     Signatures are over
//     {"key":{"drvPath":<drv basename>,"outputName":<output>},"value":{"outPath":<basename>}}.
//
// Paths are basenames throughout, as Nix writes them.
type Realisation struct {
	// DrvPath is the derivation's basename ("<hash>-<name>.drv").
	DrvPath string
	// OutputName is the output, e.g. "out".
	OutputName string
	// OutPath is the output's basename.
	OutPath string
	// ID is the Nix 2.8 id, "sha256:<hex>!<output>", or "" when the local
	// Nix did not report one (then only the build trace layout is written).
	ID string
	// Dependent maps the ids of realisations this one depends on to their
	// output basenames (Nix 2.8's dependentRealisations).
	Dependent map[string]string
	// Signatures are "key:base64" signatures over the Nix 2.8 fingerprint
	// (FingerprintV1), TraceSignatures over the build trace one
	// (Fingerprint).
	Signatures      []string
	TraceSignatures []string
}

// Validate checks that the fields have the shapes Nix parses.
func (r Realisation) Validate() error {
	switch {
	case !strings.HasSuffix(r.DrvPath, ".drv") || strings.Contains(r.DrvPath, "/"):
		return fmt.Errorf("nix: realisation: derivation %q is not a .drv basename", r.DrvPath)
	case r.OutputName == "" || strings.ContainsAny(r.OutputName, "/!^ "):
		return fmt.Errorf("nix: realisation: bad output name %q", r.OutputName)
	case r.OutPath == "" || strings.Contains(r.OutPath, "/"):
		return fmt.Errorf("nix: realisation: output %q is not a basename", r.OutPath)
	case r.ID != "" && !strings.HasSuffix(r.ID, "!"+r.OutputName):
		return fmt.Errorf("nix: realisation: id %q is not for output %q", r.ID, r.OutputName)
	case r.ID != "" && (!strings.HasPrefix(r.ID, "sha256:") || strings.ContainsAny(r.ID, "/ ")):
		return fmt.Errorf("nix: realisation: id %q is not sha256:<hash>!<output>", r.ID)
	}
	return nil
}

// KeyV1 is the Nix 2.8 cache key, or "" without an ID.
func (r Realisation) KeyV1() string {
	if r.ID == "" {
		return ""
	}
	return "realisations/" + r.ID + ".doi"
}

// TraceKey is the Nix 2.35 build trace cache key.
func (r Realisation) TraceKey() string {
	return "build-trace-v2/" + r.DrvPath + "/" + r.OutputName + ".doi"
}

func (r Realisation) v1(withSigs bool) map[string]any {
	dep := make(map[string]string, len(r.Dependent))
	for k, v := range r.Dependent {
		dep[k] = v
	}
	m := map[string]any{"dependentRealisations": dep, "id": r.ID, "outPath": r.OutPath}
	if withSigs {
		sigs := slices.Sorted(slices.Values(r.Signatures))
		m["signatures"] = append(make([]string, 0, len(sigs)), sigs...)
	}
	return m
}

// FingerprintV1 is what Nix 2.8 signs: the realisation as JSON without
// its signatures, keys sorted, no white space.
func (r Realisation) FingerprintV1() string { return string(marshal(r.v1(false))) }

// JSONV1 is the content of KeyV1.
func (r Realisation) JSONV1() []byte { return marshal(r.v1(true)) }

// Fingerprint is what Nix 2.35 signs for a build trace entry.
func (r Realisation) Fingerprint() string {
	return string(marshal(map[string]any{
		"key":   map[string]any{"drvPath": r.DrvPath, "outputName": r.OutputName},
		"value": map[string]any{"outPath": r.OutPath},
	}))
}

// TraceJSON is the content of TraceKey, signatures as objects.
func (r Realisation) TraceJSON() []byte {
	sigs := []map[string]string{}
	for _, s := range slices.Sorted(slices.Values(r.TraceSignatures)) {
		name, sig, _ := strings.Cut(s, ":")
		sigs = append(sigs, map[string]string{"keyName": name, "sig": sig})
	}
	return marshal(map[string]any{"outPath": r.OutPath, "signatures": sigs})
}

// Sign adds k's signature in both layouts, keeping the ones already
// there; signing twice adds nothing.
func (r *Realisation) Sign(k *SecretKey) {
	if r.ID != "" {
		if s := k.Sign(r.FingerprintV1()); !slices.Contains(r.Signatures, s) {
			r.Signatures = append(r.Signatures, s)
		}
	}
	if s := k.Sign(r.Fingerprint()); !slices.Contains(r.TraceSignatures, s) {
		r.TraceSignatures = append(r.TraceSignatures, s)
	}
}

// marshal is nlohmann::json::dump(): compact, keys sorted, and no HTML
// escaping.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("nix: marshal realisation: %v", err)) // maps of strings always encode
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// VerifyTraceSignature reports whether sig ("key:base64") is a valid
// signature of the build trace entry by pub.
func (r Realisation) VerifyTraceSignature(pub PublicKey, sig string) bool {
	return pub.Verify(r.Fingerprint(), sig)
}
