package uploader

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
)

const narinfoContentType = "text/x-nix-narinfo"

// narInfo builds the narinfo of a path whose NAR is stored as nar describes:
// references and deriver as basenames, the store's signatures kept and ours
// added (when the Uploader has a key).
func (u *Uploader) narInfo(p *plan, info *PathInfo, nar narResult) (*nix.NarInfo, error) {
	ni := &nix.NarInfo{
		StorePath:   info.Path,
		URL:         nar.url,
		Compression: u.codec.name,
		FileHash:    nar.fileHash,
		FileSize:    uint64(nar.fileSize),
		NarHash:     info.NarHash,
		NarSize:     info.NarSize,
		Sigs:        slices.Clone(info.Sigs),
		CA:          info.CA,
	}
	for _, r := range info.References {
		ni.References = append(ni.References, p.sps[r].Base())
	}
	slices.Sort(ni.References)
	if info.Deriver != "" {
		sp, err := nix.ParseStorePath(u.cfg.StoreDir, info.Deriver)
		if err != nil {
			return nil, fmt.Errorf("uploader: deriver of %s: %w", info.Path, err)
		}
		ni.Deriver = sp.Base()
	}
	if u.key != nil {
		if err := ni.Sign(u.cfg.StoreDir, u.key); err != nil {
			return nil, fmt.Errorf("uploader: sign %s: %w", info.Path, err)
		}
	}
	return ni, nil
}

// putNarInfo publishes the narinfo of info, the commit point of the path,
// and records it in the presence cache.
func (u *Uploader) putNarInfo(ctx context.Context, p *plan, info *PathInfo, nar narResult, log *zap.Logger) error {
	ni, err := u.narInfo(p, info, nar)
	if err != nil {
		return err
	}
	text, err := ni.MarshalText()
	if err != nil {
		return fmt.Errorf("uploader: narinfo of %s: %w", info.Path, err)
	}
	key := narinfoKey(p.sps[info.Path])
	err = u.cache.Put(ctx, key, bytes.NewReader(text), PutOptions{
		ContentType: narinfoContentType,
		Size:        int64(len(text)),
		SizeHint:    int64(len(text)),
	})
	if err != nil {
		return fmt.Errorf("uploader: put %s for %s: %w", key, info.Path, err)
	}
	log.Info("published", zap.String("url", nar.url),
		zap.Int64("nar_size", nar.narSize), zap.Int64("file_size", nar.fileSize))
	u.markPresent([]string{key}, log)
	return nil
}
