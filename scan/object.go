package scan

import (
	"strings"

	"github.com/nixs3q/nixs3q/nix"
)

// Class is the kind of a cache object, told by its key alone.
type Class uint8

// The classes of objects, as Classify tells them.
const (
	ClassNarInfo     Class = iota // "<hashpart>.narinfo" at the top level
	ClassNar                      // under "nar/"
	ClassListing                  // "<hashpart>.ls", a NAR's file listing
	ClassCacheInfo                // "nix-cache-info"
	ClassLog                      // under "log/": build logs
	ClassRealisation              // under "realisations/": CA derivation outputs
	ClassBuildTrace               // under "build-trace-v2/": newer Nix's realisations
	ClassMeta                     // under MetaPrefix: nixs3q's own metadata
	ClassOther                    // anything else
	numClasses
)

var classNames = [numClasses]string{
	"narinfo", "nar", "listing", "cache-info", "log", "realisation", "build-trace", "meta", "other",
}

// String names the class in reports ("narinfo", "nar", "listing", ...).
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "unknown"
}

// Classify tells the kind of an object by its key. A ".narinfo" or ".ls"
// key is ClassNarInfo or ClassListing only when its name is a valid store
// path hash part at the top level, the only place Nix clients look for
// them; otherwise it is ClassOther.
func Classify(key string) Class {
	switch {
	case key == "nix-cache-info":
		return ClassCacheInfo
	case strings.HasPrefix(key, "nar/"):
		return ClassNar
	case strings.HasPrefix(key, MetaPrefix):
		return ClassMeta
	case strings.HasPrefix(key, "log/"):
		return ClassLog
	case strings.HasPrefix(key, "realisations/"):
		return ClassRealisation
	case strings.HasPrefix(key, "build-trace-v2/"):
		return ClassBuildTrace
	}
	if h, ok := strings.CutSuffix(key, ".narinfo"); ok && validHashPart(h) {
		return ClassNarInfo
	}
	if h, ok := strings.CutSuffix(key, ".ls"); ok && validHashPart(h) {
		return ClassListing
	}
	return ClassOther
}

// HashPart returns the store path hash part a narinfo or listing key is
// named after, or "" for other keys.
func HashPart(key string) string {
	switch Classify(key) {
	case ClassNarInfo:
		return strings.TrimSuffix(key, ".narinfo")
	case ClassListing:
		return strings.TrimSuffix(key, ".ls")
	}
	return ""
}

// NarInfoKey is the key of the narinfo of the store path with hash part h.
func NarInfoKey(h string) string { return h + ".narinfo" }

// ListingKey is the key of the NAR listing of the store path with hash
// part h.
func ListingKey(h string) string { return h + ".ls" }

// validHashPart reports whether h is a 32-character nix32 store path hash
// part.
func validHashPart(h string) bool {
	if len(h) != 32 {
		return false
	}
	// A basename of the hash part and a one-letter name is valid exactly
	// when the hash part is.
	return nix.ValidBase(h+"-x") == nil
}
