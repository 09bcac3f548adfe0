package nix

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// NarInfo is the content of a <hashpart>.narinfo file: the metadata a client
// reads before it fetches a NAR, and the signatures it trusts the path by.
type NarInfo struct {
	StorePath   string   // full path
	URL         string   // of the (compressed) NAR, relative to the cache root
	Compression string   // "xz", "zstd", "bzip2", "br" or "none"
	FileHash    Hash     // of the compressed NAR; zero when unknown
	FileSize    uint64   // of the compressed NAR; 0 when unknown
	NarHash     Hash     // sha256 of the uncompressed NAR
	NarSize     uint64   // length of the uncompressed NAR
	References  []string // basenames, sorted
	Deriver     string   // basename, optional
	Sigs        []string // "keyname:base64"
	CA          string   // content address, optional
}

// MarshalText writes n in the field order and spacing of Nix's own narinfo
// writer. Compression and References are always written (References as
// "References: " when there are none); FileHash and FileSize are omitted when
// zero, Deriver and CA when empty. References are written sorted. It fails
// when a required field (StorePath, URL, Compression, NarHash, NarSize) is
// missing, a hash or basename is invalid, or a value contains a newline.
func (n *NarInfo) MarshalText() ([]byte, error) {
	if err := n.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	field := func(k, v string) {
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	field("StorePath", n.StorePath)
	field("URL", n.URL)
	field("Compression", n.Compression)
	if !n.FileHash.IsZero() {
		field("FileHash", n.FileHash.String())
	}
	if n.FileSize != 0 {
		field("FileSize", strconv.FormatUint(n.FileSize, 10))
	}
	field("NarHash", n.NarHash.String())
	field("NarSize", strconv.FormatUint(n.NarSize, 10))
	refs := slices.Clone(n.References)
	slices.Sort(refs)
	field("References", strings.Join(refs, " "))
	if n.Deriver != "" {
		field("Deriver", n.Deriver)
	}
	for _, s := range n.Sigs {
		field("Sig", s)
	}
	if n.CA != "" {
		field("CA", n.CA)
	}
	return b.Bytes(), nil
}

func (n *NarInfo) validate() error {
	for _, v := range append([]string{n.StorePath, n.URL, n.Compression, n.Deriver, n.CA}, n.Sigs...) {
		if strings.ContainsAny(v, "\n\r") {
			return fmt.Errorf("nix: narinfo value %q contains a newline", v)
		}
	}
	switch {
	case n.StorePath == "":
		return fmt.Errorf("nix: narinfo has no StorePath")
	case n.URL == "":
		return fmt.Errorf("nix: narinfo for %s has no URL", n.StorePath)
	case n.Compression == "":
		// Clients read a missing or empty Compression as bzip2.
		return fmt.Errorf("nix: narinfo for %s has no Compression (use \"none\" for an uncompressed NAR)", n.StorePath)
	case n.NarSize == 0:
		return fmt.Errorf("nix: narinfo for %s has no NarSize", n.StorePath)
	}
	if err := checkNarInfoPath(n.StorePath); err != nil {
		return err
	}
	if err := n.NarHash.Validate(); err != nil {
		return fmt.Errorf("nix: narinfo for %s: NarHash: %w", n.StorePath, err)
	}
	if n.NarHash.Algo != "sha256" {
		return fmt.Errorf("nix: narinfo for %s: NarHash must be sha256, not %s", n.StorePath, n.NarHash.Algo)
	}
	if !n.FileHash.IsZero() {
		if err := n.FileHash.Validate(); err != nil {
			return fmt.Errorf("nix: narinfo for %s: FileHash: %w", n.StorePath, err)
		}
	}
	for _, r := range n.References {
		if err := ValidBase(r); err != nil {
			return fmt.Errorf("nix: narinfo for %s: reference: %w", n.StorePath, err)
		}
	}
	if n.Deriver != "" {
		if err := ValidBase(n.Deriver); err != nil {
			return fmt.Errorf("nix: narinfo for %s: deriver: %w", n.StorePath, err)
		}
	}
	for _, s := range n.Sigs {
		if i := strings.IndexByte(s, ':'); i <= 0 || i == len(s)-1 {
			return fmt.Errorf("nix: narinfo for %s: signature %q is not \"keyname:base64\"", n.StorePath, s)
		}
	}
	return nil
}

// checkNarInfoPath checks that p is an absolute path whose basename is a
// valid store path basename; the store directory is checked by Fingerprint,
// which knows it.
func checkNarInfoPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return &StorePathError{Path: p, Reason: "is not a clean absolute path"}
	}
	if path.Dir(p) == "/" {
		return &StorePathError{Path: p, Reason: "is not in a store directory"}
	}
	return ValidBase(path.Base(p))
}

// ParseNarInfo parses a narinfo file. Lines are "Key: value"; unknown keys
// are ignored, as clients ignore them, and blank lines are skipped. It fails
// on a line without a colon, a repeated single-valued key, a missing
// StorePath, URL, NarHash or NarSize, or any invalid hash, size, store path or
// basename. A Deriver of "unknown-deriver" is read as none.
func ParseNarInfo(data []byte) (*NarInfo, error) {
	n := &NarInfo{}
	seen := map[string]bool{}
	for lineNo, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok || key == "" {
			return nil, fmt.Errorf("nix: narinfo line %d: not \"Key: value\": %q", lineNo+1, line)
		}
		value = strings.TrimPrefix(value, " ")
		if key != "Sig" {
			if seen[key] {
				return nil, fmt.Errorf("nix: narinfo line %d: repeated key %q", lineNo+1, key)
			}
			seen[key] = true
		}
		if err := n.setField(key, value); err != nil {
			return nil, fmt.Errorf("nix: narinfo line %d: %s: %w", lineNo+1, key, err)
		}
	}
	for _, k := range []string{"StorePath", "URL", "NarHash", "NarSize"} {
		if !seen[k] {
			return nil, fmt.Errorf("nix: narinfo has no %s", k)
		}
	}
	if n.URL == "" {
		return nil, fmt.Errorf("nix: narinfo has an empty URL")
	}
	if n.NarSize == 0 {
		return nil, fmt.Errorf("nix: narinfo has NarSize 0")
	}
	return n, nil
}

func (n *NarInfo) setField(key, value string) error {
	var err error
	switch key {
	case "StorePath":
		n.StorePath, err = value, checkNarInfoPath(value)
	case "URL":
		n.URL = value
	case "Compression":
		n.Compression = value
	case "FileHash":
		n.FileHash, err = ParseHash(value)
	case "FileSize":
		n.FileSize, err = strconv.ParseUint(value, 10, 64)
	case "NarHash":
		n.NarHash, err = ParseHash(value)
		if err == nil && n.NarHash.Algo != "sha256" {
			err = fmt.Errorf("must be sha256, not %s", n.NarHash.Algo)
		}
	case "NarSize":
		n.NarSize, err = strconv.ParseUint(value, 10, 64)
	case "References":
		n.References = nil // empty stays nil, as a NarInfo built in code has it
		if refs := strings.Fields(value); len(refs) > 0 {
			n.References = refs
		}
		slices.Sort(n.References)
		for _, r := range n.References {
			if err = ValidBase(r); err != nil {
				break
			}
		}
	case "Deriver":
		if value != "unknown-deriver" {
			n.Deriver, err = value, ValidBase(value)
		}
	case "Sig":
		if i := strings.IndexByte(value, ':'); i <= 0 || i == len(value)-1 {
			err = fmt.Errorf("%q is not \"keyname:base64\"", value)
		}
		n.Sigs = append(n.Sigs, value)
	case "CA":
		n.CA = value
	}
	return err
}
