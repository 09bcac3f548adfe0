package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/nixs3q/nixs3q/nix"
)

const (
	cacheInfoKey         = nix.CacheInfoKey
	cacheInfoContentType = nix.CacheInfoContentType
	maxCacheInfoSize     = 64 << 10
)

// ErrStoreDirMismatch reports that the cache serves another store directory
// than the one uploaded from: Nix clients would refuse every path in it.
var ErrStoreDirMismatch = errors.New("uploader: the cache belongs to another store directory")

// EnsureCacheInfo makes sure the cache has a nix-cache-info file that
// matches this store, which Nix clients read before anything else. A missing
// file is created with StoreDir, WantMassQuery and Priority from the Config;
// an existing one is left as it is, unless its StoreDir differs, which is an
// error wrapping ErrStoreDirMismatch. It is idempotent.
func (u *Uploader) EnsureCacheInfo(ctx context.Context) error {
	rc, err := u.cache.Get(ctx, cacheInfoKey)
	if errors.Is(err, fs.ErrNotExist) {
		return u.putCacheInfo(ctx)
	}
	if err != nil {
		return fmt.Errorf("uploader: read %s: %w", cacheInfoKey, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxCacheInfoSize))
	if err != nil {
		return fmt.Errorf("uploader: read %s: %w", cacheInfoKey, err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(key) != "StoreDir" {
			continue
		}
		if dir := strings.TrimSpace(value); dir != u.cfg.StoreDir {
			return fmt.Errorf("uploader: %s of %s says StoreDir %s, but this store is %s: %w",
				cacheInfoKey, u.cache, dir, u.cfg.StoreDir, ErrStoreDirMismatch)
		}
	}
	return nil
}

func (u *Uploader) putCacheInfo(ctx context.Context) error {
	text := nix.CacheInfo{StoreDir: u.cfg.StoreDir, WantMassQuery: u.cfg.WantMassQuery, Priority: u.cfg.Priority}.String()
	err := u.cache.Put(ctx, cacheInfoKey, strings.NewReader(text), PutOptions{
		ContentType: cacheInfoContentType,
		Size:        int64(len(text)),
		SizeHint:    int64(len(text)),
	})
	if err != nil {
		return fmt.Errorf("uploader: create %s: %w", cacheInfoKey, err)
	}
	return nil
}
