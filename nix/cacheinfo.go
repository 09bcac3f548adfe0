package nix

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// CacheInfoKey is the name of the file every binary cache serves at its
// root, which Nix clients read before anything else.
const CacheInfoKey = "nix-cache-info"

// CacheInfoContentType is the MIME type Nix serves nix-cache-info with.
const CacheInfoContentType = "text/x-nix-cache-info"

// CacheInfo is the content of a binary cache's nix-cache-info file.
type CacheInfo struct {
	StoreDir      string
	WantMassQuery bool
	Priority      int
}

// String renders the file as Nix writes it, one "Key: value" line per field.
func (c CacheInfo) String() string {
	mass := 0
	if c.WantMassQuery {
		mass = 1
	}
	return fmt.Sprintf("StoreDir: %s\nWantMassQuery: %d\nPriority: %d\n", c.StoreDir, mass, c.Priority)
}

// ParseCacheInfo reads a nix-cache-info file. Unknown keys are ignored, as
// Nix does; a missing StoreDir or a malformed WantMassQuery or Priority is
// an error. A missing Priority is 50 and WantMassQuery false, Nix's defaults.
func ParseCacheInfo(text string) (CacheInfo, error) {
	info := CacheInfo{Priority: 50}
	for line := range strings.SplitSeq(text, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(key) {
		case "StoreDir":
			info.StoreDir = value
		case "WantMassQuery":
			switch value {
			case "1":
				info.WantMassQuery = true
			case "0":
				info.WantMassQuery = false
			default:
				return CacheInfo{}, fmt.Errorf("nix: nix-cache-info: WantMassQuery %q: want 0 or 1", value)
			}
		case "Priority":
			p, err := strconv.Atoi(value)
			if err != nil {
				return CacheInfo{}, fmt.Errorf("nix: nix-cache-info: Priority %q is not a number", value)
			}
			info.Priority = p
		}
	}
	if info.StoreDir == "" {
		return CacheInfo{}, errors.New("nix: nix-cache-info has no StoreDir")
	}
	return info, nil
}
