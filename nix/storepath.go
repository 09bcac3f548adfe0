package nix

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// DefaultStoreDir is the store directory of a default Nix installation.
// Everything in this package takes the store directory as a parameter.
const DefaultStoreDir = "/nix/store"

const (
	// hashPartLen is the length of the nix32 hash part of a store path
	// basename (160 bits).
	hashPartLen = 32
	// maxNameLen is the longest name Nix accepts after the hash part.
	maxNameLen = 211
)

// ErrInvalidStorePath is matched (errors.Is) by every error that rejects a
// store path or a store path basename.
var ErrInvalidStorePath = errors.New("nix: invalid store path")

// StorePathError says why a path is not a valid store path. It matches
// ErrInvalidStorePath.
type StorePathError struct {
	Path   string // the rejected path or basename
	Reason string // e.g. "is not in the store directory /nix/store"
}

func (e *StorePathError) Error() string { return fmt.Sprintf("nix: %q %s", e.Path, e.Reason) }

// Is makes errors.Is(err, ErrInvalidStorePath) true.
func (e *StorePathError) Is(target error) bool { return target == ErrInvalidStorePath }

// StorePath is a validated top-level store path: Dir/HashPart-Name.
type StorePath struct {
	Dir      string // the store directory, e.g. /nix/store
	HashPart string // 32 nix32 characters
	Name     string // e.g. hello-2.12
}

// String returns the full path.
func (p StorePath) String() string { return path.Join(p.Dir, p.Base()) }

// Base returns the basename "<hash>-<name>", the form narinfo References use.
func (p StorePath) Base() string { return p.HashPart + "-" + p.Name }

// ParseStorePath validates p as a top-level path in storeDir: p must be clean
// and absolute, exactly one level below storeDir (not a file inside a store
// path), with a 32-character nix32 hash part, a '-', and a name of 1 to 211
// characters from [A-Za-z0-9+-._?=] that does not start with '.'. Errors wrap
// ErrInvalidStorePath and say which rule p breaks.
func ParseStorePath(storeDir, p string) (StorePath, error) {
	if err := checkStoreDir(storeDir); err != nil {
		return StorePath{}, err
	}
	bad := func(reason string) (StorePath, error) {
		return StorePath{}, &StorePathError{Path: p, Reason: reason}
	}
	switch {
	case p == "":
		return bad("is empty")
	case !path.IsAbs(p):
		return bad("is not an absolute path")
	case path.Clean(p) != p:
		return bad("is not a clean path")
	}
	dir, base := path.Split(p)
	if path.Clean(dir) != storeDir {
		if strings.HasPrefix(p, strings.TrimSuffix(storeDir, "/")+"/") {
			return bad("is not a top-level path in the store directory " + storeDir)
		}
		return bad("is not in the store directory " + storeDir)
	}
	sp, reason := splitBase(base)
	if reason != "" {
		return bad(reason)
	}
	sp.Dir = storeDir
	return sp, nil
}

// StorePathFromBase validates base ("<hash>-<name>") by the rules of
// ParseStorePath and returns the store path it names in storeDir.
func StorePathFromBase(storeDir, base string) (StorePath, error) {
	if err := checkStoreDir(storeDir); err != nil {
		return StorePath{}, err
	}
	sp, reason := splitBase(base)
	if reason != "" {
		return StorePath{}, &StorePathError{Path: base, Reason: reason}
	}
	sp.Dir = storeDir
	return sp, nil
}

// ValidBase reports whether base is a valid store path basename.
func ValidBase(base string) error {
	if _, reason := splitBase(base); reason != "" {
		return &StorePathError{Path: base, Reason: reason}
	}
	return nil
}

func checkStoreDir(storeDir string) error {
	if storeDir == "" || !path.IsAbs(storeDir) || path.Clean(storeDir) != storeDir {
		return &StorePathError{Path: storeDir, Reason: "is not a clean absolute store directory"}
	}
	return nil
}

// splitBase checks a basename and returns its parts, or the reason it is
// invalid.
func splitBase(base string) (StorePath, string) {
	if strings.IndexByte(base, '/') >= 0 {
		return StorePath{}, "has a '/' in its basename"
	}
	if len(base) < hashPartLen+2 || base[hashPartLen] != '-' {
		return StorePath{}, fmt.Sprintf("does not start with a %d-character hash part, '-' and a name", hashPartLen)
	}
	hashPart, name := base[:hashPartLen], base[hashPartLen+1:]
	for i := 0; i < len(hashPart); i++ {
		if strings.IndexByte(base32Alphabet, hashPart[i]) < 0 {
			return StorePath{}, fmt.Sprintf("has invalid character %q in its hash part", hashPart[i])
		}
	}
	if len(name) > maxNameLen {
		return StorePath{}, fmt.Sprintf("has a name of %d characters, longer than %d", len(name), maxNameLen)
	}
	// As Nix's checkName: a leading '.' is fine (".envrc"), but the first
	// dash-separated component must not be "." or "..".
	if first, _, _ := strings.Cut(name, "-"); first == "." || first == ".." {
		return StorePath{}, fmt.Sprintf("has a name whose first component is %q", first)
	}
	for i := 0; i < len(name); i++ {
		if !validNameChar(name[i]) {
			return StorePath{}, fmt.Sprintf("has invalid character %q in its name", name[i])
		}
	}
	return StorePath{HashPart: hashPart, Name: name}, ""
}

func validNameChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("+-._?=", c) >= 0
}
