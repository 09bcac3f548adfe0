package uploader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nixs3q/nixs3q/nix"
)

// jsonPathInfo holds one store object as any Nix version prints it. Fields
// whose type changed between versions stay raw and are decoded by shape.
type jsonPathInfo struct {
	Path       string            `json:"path"`
	Valid      *bool             `json:"valid"`
	Version    int               `json:"version"`
	StoreDir   string            `json:"storeDir"`
	NarHash    json.RawMessage   `json:"narHash"`
	NarSize    *uint64           `json:"narSize"`
	References []string          `json:"references"`
	Deriver    *string           `json:"deriver"`
	Signatures []json.RawMessage `json:"signatures"`
	CA         json.RawMessage   `json:"ca"`
}

// parsePathInfoJSON reads the output of `nix path-info --json` in every shape
// Nix has printed (see doc.go). It returns the valid paths' metadata and the
// full paths that Nix reported as invalid. Store paths may be full or
// basenames; both are returned as full paths in storeDir.
func parsePathInfoJSON(data []byte, storeDir string) (infos []PathInfo, invalid []string, err error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil, errors.New("empty output")
	}
	switch data[0] {
	case '[': // Nix <= 2.18, Lix: [{"path": ..., ...}, {"path": ..., "valid": false}]
		var list []json.RawMessage
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, nil, fmt.Errorf("parse JSON: %w", err)
		}
		for i, raw := range list {
			info, valid, err := parseJSONObject(raw, "", storeDir)
			if err != nil {
				return nil, nil, fmt.Errorf("element %d: %w", i, err)
			}
			if valid {
				infos = append(infos, info)
			} else {
				invalid = append(invalid, info.Path)
			}
		}
	case '{': // Nix >= 2.19: {"<path>": {...} or null}
		var byPath map[string]json.RawMessage
		if err := json.Unmarshal(data, &byPath); err != nil {
			return nil, nil, fmt.Errorf("parse JSON: %w", err)
		}
		for _, key := range slices.Sorted(maps.Keys(byPath)) {
			info, valid, err := parseJSONObject(byPath[key], key, storeDir)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", key, err)
			}
			if valid {
				infos = append(infos, info)
			} else {
				invalid = append(invalid, info.Path)
			}
		}
	default:
		return nil, nil, fmt.Errorf("output is neither a JSON array nor an object: %.40q", data)
	}
	slices.SortFunc(infos, func(a, b PathInfo) int { return strings.Compare(a.Path, b.Path) })
	slices.Sort(invalid)
	return infos, invalid, nil
}

// parseJSONObject decodes one store object. key is its map key ("" in the
// array form). valid is false for {"valid": false} and null.
func parseJSONObject(raw json.RawMessage, key, storeDir string) (info PathInfo, valid bool, err error) {
	if key != "" {
		if info.Path, err = fullStorePath(storeDir, key); err != nil {
			return PathInfo{}, false, err
		}
	}
	if isJSONNull(raw) {
		if key == "" {
			return PathInfo{}, false, errors.New("null store object without a path")
		}
		return info, false, nil
	}
	var j jsonPathInfo
	if err := json.Unmarshal(raw, &j); err != nil {
		return PathInfo{}, false, fmt.Errorf("parse store object: %w", err)
	}
	if j.StoreDir != "" && j.StoreDir != storeDir {
		return PathInfo{}, false, fmt.Errorf("store directory is %s, expected %s", j.StoreDir, storeDir)
	}
	if j.Path != "" {
		p, err := fullStorePath(storeDir, j.Path)
		if err != nil {
			return PathInfo{}, false, err
		}
		if info.Path != "" && p != info.Path {
			return PathInfo{}, false, fmt.Errorf("object for %s says path %s", info.Path, p)
		}
		info.Path = p
	}
	if info.Path == "" {
		return PathInfo{}, false, errors.New("store object without a path")
	}
	if j.Valid != nil && !*j.Valid {
		return info, false, nil
	}

	if len(j.NarHash) == 0 || isJSONNull(j.NarHash) {
		return PathInfo{}, false, fmt.Errorf("%s: no narHash", info.Path)
	}
	if info.NarHash, err = parseJSONHash(j.NarHash); err != nil {
		return PathInfo{}, false, fmt.Errorf("%s: narHash: %w", info.Path, err)
	}
	if info.NarHash.Algo != "sha256" {
		return PathInfo{}, false, fmt.Errorf("%s: narHash is %s, not sha256", info.Path, info.NarHash.Algo)
	}
	if j.NarSize == nil {
		return PathInfo{}, false, fmt.Errorf("%s: no narSize", info.Path)
	}
	info.NarSize = *j.NarSize
	for _, r := range j.References {
		full, err := fullStorePath(storeDir, r)
		if err != nil {
			return PathInfo{}, false, fmt.Errorf("%s: reference: %w", info.Path, err)
		}
		info.References = append(info.References, full)
	}
	slices.Sort(info.References)
	info.References = slices.Compact(info.References)
	if j.Deriver != nil && *j.Deriver != "" {
		if info.Deriver, err = fullStorePath(storeDir, *j.Deriver); err != nil {
			return PathInfo{}, false, fmt.Errorf("%s: deriver: %w", info.Path, err)
		}
	}
	for _, s := range j.Signatures {
		sig, err := parseJSONSignature(s)
		if err != nil {
			return PathInfo{}, false, fmt.Errorf("%s: signature: %w", info.Path, err)
		}
		info.Sigs = append(info.Sigs, sig)
	}
	if info.CA, err = parseJSONCA(j.CA); err != nil {
		return PathInfo{}, false, fmt.Errorf("%s: ca: %w", info.Path, err)
	}
	return info, true, nil
}

// fullStorePath accepts a full store path or a basename and returns the full
// path, validated.
func fullStorePath(storeDir, s string) (string, error) {
	var (
		sp  nix.StorePath
		err error
	)
	if strings.HasPrefix(s, "/") {
		sp, err = nix.ParseStorePath(storeDir, s)
	} else {
		sp, err = nix.StorePathFromBase(storeDir, s)
	}
	if err != nil {
		return "", err
	}
	return sp.String(), nil
}

func isJSONNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// jsonHash is a hash as a structured JSON object: newer Nix prints
// {"algorithm": "sha256", "format": "base64", "hash": "..."}; some versions
// print the encoding as the key, e.g. {"algo": "sha256", "base16": "..."}.
type jsonHash struct {
	Algorithm string `json:"algorithm"`
	Algo      string `json:"algo"`
	Format    string `json:"format"`
	Hash      string `json:"hash"`
	Base16    string `json:"base16"`
	Nix32     string `json:"nix32"`
	Base32    string `json:"base32"`
	Base64    string `json:"base64"`
	SRI       string `json:"sri"`
}

// parseJSONHash decodes a hash given as a string in any form nix.ParseHash
// reads ("sha256-<base64>", "sha256:<nix32>", "sha256:<base16>") or as a
// structured object.
func parseJSONHash(raw json.RawMessage) (nix.Hash, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return nix.ParseHash(s)
	}
	var j jsonHash
	if err := json.Unmarshal(raw, &j); err != nil {
		return nix.Hash{}, fmt.Errorf("neither a string nor a hash object: %w", err)
	}
	algo := j.Algorithm
	if algo == "" {
		algo = j.Algo
	}
	format, digest := j.Format, j.Hash
	if format == "" {
		for _, f := range []struct{ name, value string }{
			{"base16", j.Base16}, {"nix32", j.Nix32}, {"nix32", j.Base32}, {"base64", j.Base64}, {"sri", j.SRI},
		} {
			if f.value != "" {
				format, digest = f.name, f.value
				break
			}
		}
	}
	if digest == "" {
		return nix.Hash{}, errors.New("hash object without a digest")
	}
	if format == "sri" {
		h, err := nix.ParseHash(digest)
		if err == nil && algo != "" && h.Algo != algo {
			err = fmt.Errorf("hash object says %s but its SRI digest is %s", algo, h.Algo)
		}
		return h, err
	}
	if algo == "" {
		return nix.Hash{}, errors.New("hash object without an algorithm")
	}
	switch format {
	case "base64":
		return nix.ParseHash(algo + "-" + digest)
	case "base16", "nix32", "base32":
		return nix.ParseHash(algo + ":" + digest)
	}
	return nix.Hash{}, fmt.Errorf("hash object has unknown format %q", format)
}

// parseJSONSignature accepts "keyname:base64" or {"keyName": .., "sig": ..}.
func parseJSONSignature(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if i := strings.IndexByte(s, ':'); i <= 0 || i == len(s)-1 {
			return "", fmt.Errorf("%q is not \"keyname:signature\"", s)
		}
		return s, nil
	}
	var j struct {
		KeyName string `json:"keyName"`
		Sig     string `json:"sig"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return "", fmt.Errorf("neither a string nor a signature object: %w", err)
	}
	if j.KeyName == "" || j.Sig == "" || strings.ContainsAny(j.KeyName, ": \t\n") {
		return "", fmt.Errorf("signature object needs a keyName and a sig")
	}
	return j.KeyName + ":" + j.Sig, nil
}

// parseJSONCA accepts null, the narinfo text form ("fixed:r:sha256:...",
// "text:sha256:..."), or {"method": "nar"|"flat"|"text"|"git", "hash": ...}.
func parseJSONCA(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || isJSONNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if strings.ContainsAny(s, "\n\r") {
			return "", fmt.Errorf("%q contains a newline", s)
		}
		return s, nil
	}
	var j struct {
		Method string          `json:"method"`
		Hash   json.RawMessage `json:"hash"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return "", fmt.Errorf("neither a string nor a content-address object: %w", err)
	}
	if len(j.Hash) == 0 || isJSONNull(j.Hash) {
		return "", errors.New("content-address object without a hash")
	}
	h, err := parseJSONHash(j.Hash)
	if err != nil {
		return "", err
	}
	return nix.FormatCA(j.Method, h)
}
