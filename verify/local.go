package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nixs3q/nixs3q/uploader"
)

// LocalStore tells which store paths the local Nix store has, so that
// Repair can publish them again.
type LocalStore interface {
	// Valid returns which of paths are valid in the local store.
	Valid(ctx context.Context, paths []string) (map[string]bool, error)
	// Find returns the valid store path with hash part hash, or "" when
	// there is none.
	Find(ctx context.Context, hash string) (string, error)
}

// NixStore is the LocalStore of a Nix installation, read through a
// uploader.PathInfoSource (uploader.NixCLI: `nix path-info`).
type NixStore struct {
	Src      uploader.PathInfoSource
	StoreDir string
}

var _ LocalStore = NixStore{}

// Valid implements LocalStore: paths missing on disk are not valid; the
// others are asked about in one query, and one by one when the query
// reports that some are not valid.
func (s NixStore) Valid(ctx context.Context, paths []string) (map[string]bool, error) {
	out := make(map[string]bool, len(paths))
	var exist []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			exist = append(exist, p)
		}
	}
	if len(exist) == 0 {
		return out, nil
	}
	if _, err := s.Src.PathInfo(ctx, exist, false); err == nil {
		for _, p := range exist {
			out[p] = true
		}
		return out, nil
	} else if !errors.Is(err, uploader.ErrPathGone) {
		return nil, fmt.Errorf("verify: query the local store: %w", err)
	}
	for _, p := range exist {
		_, err := s.Src.PathInfo(ctx, []string{p}, false)
		switch {
		case err == nil:
			out[p] = true
		case !errors.Is(err, uploader.ErrPathGone):
			return nil, fmt.Errorf("verify: query the local store: %w", err)
		}
	}
	return out, nil
}

// Find implements LocalStore by looking for "<hash>-*" in the store
// directory.
func (s NixStore) Find(ctx context.Context, hash string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(s.StoreDir, hash+"-*"))
	if err != nil {
		return "", fmt.Errorf("verify: look for %s in the local store: %w", hash, err)
	}
	var cands []string
	for _, m := range matches {
		if !strings.HasSuffix(m, ".lock") {
			cands = append(cands, m)
		}
	}
	valid, err := s.Valid(ctx, cands)
	if err != nil {
		return "", err
	}
	for _, m := range cands {
		if valid[m] {
			return m, nil
		}
	}
	return "", nil
}
