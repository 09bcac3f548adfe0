package nix

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Fingerprint returns the string Nix signs for a path:
// "1;<store path>;sha256:<nix32 NarHash>;<NarSize>;<reference paths>", the
// references as full paths in storeDir, sorted and comma-joined. It fails
// when StorePath is not a valid path in storeDir, a reference is not a valid
// basename, NarHash is not a sha256 hash, or NarSize is 0 — the cases where
// Nix refuses to compute one.
func (n *NarInfo) Fingerprint(storeDir string) (string, error) {
	sp, err := ParseStorePath(storeDir, n.StorePath)
	if err != nil {
		return "", fmt.Errorf("nix: fingerprint: %w", err)
	}
	if n.NarHash.Algo != "sha256" || n.NarHash.Validate() != nil {
		return "", fmt.Errorf("nix: fingerprint of %s: NarHash %q is not a sha256 hash", n.StorePath, n.NarHash.String())
	}
	if n.NarSize == 0 {
		return "", fmt.Errorf("nix: fingerprint of %s: NarSize is unknown", n.StorePath)
	}
	refs := make([]string, 0, len(n.References))
	for _, r := range n.References {
		if err := ValidBase(r); err != nil {
			return "", fmt.Errorf("nix: fingerprint of %s: reference: %w", n.StorePath, err)
		}
		refs = append(refs, path.Join(storeDir, r))
	}
	slices.Sort(refs)
	return "1;" + sp.String() + ";" + n.NarHash.String() + ";" +
		strconv.FormatUint(n.NarSize, 10) + ";" + strings.Join(refs, ","), nil
}

// Sign adds k's signature of n's fingerprint to n.Sigs. A signature already
// there under k's name is replaced in place; signatures by other keys are
// kept in their order. On error n is unchanged.
func (n *NarInfo) Sign(storeDir string, k *SecretKey) error {
	fp, err := n.Fingerprint(storeDir)
	if err != nil {
		return err
	}
	sig := k.Sign(fp)
	prefix := k.Name + ":"
	for i, s := range n.Sigs {
		if strings.HasPrefix(s, prefix) {
			n.Sigs[i] = sig
			// Drop any further signatures under the same name: only the
			// fresh one is known to be valid.
			tail := slices.DeleteFunc(n.Sigs[i+1:], func(s string) bool { return strings.HasPrefix(s, prefix) })
			n.Sigs = n.Sigs[:i+1+len(tail)]
			return nil
		}
	}
	n.Sigs = append(n.Sigs, sig)
	return nil
}

// FormatCA returns the narinfo CA text for a content address given as a
// method and hash, as newer `nix path-info --json` prints them: method "nar"
// gives "fixed:r:<algo>:<nix32>", "flat" gives "fixed:<algo>:<nix32>",
// "text" gives "text:<algo>:<nix32>" (sha256 only, as Nix requires) and "git"
// gives "fixed:git:<algo>:<nix32>".
func FormatCA(method string, h Hash) (string, error) {
	if err := h.Validate(); err != nil {
		return "", fmt.Errorf("nix: content address: %w", err)
	}
	switch method {
	case "nar":
		return "fixed:r:" + h.String(), nil
	case "flat":
		return "fixed:" + h.String(), nil
	case "text":
		if h.Algo != "sha256" {
			return "", fmt.Errorf("nix: content address: text hashing needs sha256, not %s", h.Algo)
		}
		return "text:" + h.String(), nil
	case "git":
		return "fixed:git:" + h.String(), nil
	}
	return "", fmt.Errorf("nix: content address: unknown method %q (want nar, flat, text or git)", method)
}
