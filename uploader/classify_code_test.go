package uploader

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Every reason has a one-word code, so metric labels stay few and stable.
func TestEveryReasonHasACode(t *testing.T) {
	seen := map[string]bool{}
	for reason, code := range reasonCodes {
		if code == "" || strings.ContainsAny(code, " :") {
			t.Errorf("reason %q has code %q", reason, code)
		}
		seen[code] = true
	}
	if c := Classify(errors.New("something odd")); c.Code != "other" {
		t.Errorf("unknown error code = %q", c.Code)
	}
	if c := Classify(fmt.Errorf("x: %w", ErrHashMismatch)); c.Code != "hash_mismatch" || !c.Permanent {
		t.Errorf("hash mismatch = %+v", c)
	}
	if c := Classify(fmt.Errorf("x: %w", ErrStoreDirMismatch)); c.Code != "store_dir" || !c.Permanent {
		t.Errorf("store dir mismatch = %+v", c)
	}
	if len(seen) < 15 {
		t.Errorf("only %d distinct codes", len(seen))
	}
}
