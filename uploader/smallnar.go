package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
)

// Small NARs are uploaded differently from large ones. A large NAR streams
// through the compressor into the cache and holds one of the Concurrency
// slots, whose number bounds CPU and memory, for as long as its upload
// takes. A small one is dumped, verified and compressed in memory in a
// millisecond or two and then sent with a single request, holding one of
// smallSlots slots instead: over a network, where each request costs a round
// trip, a closure of many small paths would otherwise upload only
// Concurrency paths per round trip.
const (
	// smallNARMax is the largest NarSize uploaded as a small NAR.
	smallNARMax = 256 << 10
	// smallSlots bounds the small NARs in flight at once, so their buffers
	// take at most smallSlots × 2 × smallNARMax (32 MiB).
	smallSlots = 64
)

// isSmall reports whether info's NAR goes the small way.
func (u *Uploader) isSmall(info *PathInfo) bool {
	return info.NarSize <= smallNARMax && u.codec.name != "xz"
}

// putSmallNAR dumps info's NAR into memory, checks it against NarHash and
// NarSize, compresses it and uploads it with one Put of known size. Nothing
// is sent unless the NAR verified. The caller holds a small slot.
func (u *Uploader) putSmallNAR(ctx context.Context, info *PathInfo, log *zap.Logger) (narResult, error) {
	tr := u.startTransfer(info)
	defer u.endTransfer(tr)
	key := narKey(info.NarHash, u.codec.ext)
	log.Debug("uploading small NAR", zap.String("key", key), zap.Uint64("nar_size", info.NarSize))

	var buf bytes.Buffer
	buf.Grow(int(info.NarSize))
	narHash := sha256.New()
	w := &countingWriter{w: io.MultiWriter(&buf, narHash), progress: &tr.read}
	var listing *nix.Listing
	var err error
	if u.cfg.WriteNarListing {
		listing, err = nix.DumpPathListing(w, info.Path)
	} else {
		err = nix.DumpPath(w, info.Path)
	}
	if err != nil {
		if _, statErr := os.Lstat(info.Path); errors.Is(statErr, fs.ErrNotExist) {
			return narResult{}, fmt.Errorf("uploader: dump %s: %w: %w", info.Path, ErrPathGone, err)
		}
		return narResult{}, fmt.Errorf("uploader: dump %s: %w", info.Path, err)
	}
	got := nix.NewSHA256(narHash.Sum(nil))
	if n := w.n.Load(); uint64(n) != info.NarSize || !got.Equal(info.NarHash) {
		return narResult{}, fmt.Errorf("uploader: %s: NAR is %s (%d bytes) but the store records %s (%d bytes): %w",
			info.Path, got, n, info.NarHash, info.NarSize, ErrHashMismatch)
	}
	data, ok := u.codec.compressAll(buf.Bytes())
	if !ok {
		return narResult{}, fmt.Errorf("uploader: %s compression has no one-shot form", u.codec.name)
	}
	fileHash := sha256.Sum256(data)
	err = u.cache.Put(ctx, key, bytes.NewReader(data), PutOptions{
		ContentType: narContentType,
		Size:        int64(len(data)),
		SizeHint:    int64(len(data)),
	})
	if err != nil {
		return narResult{}, fmt.Errorf("uploader: put %s for %s: %w", key, info.Path, err)
	}
	return narResult{
		url:      key,
		fileHash: nix.NewSHA256(fileHash[:]),
		fileSize: int64(len(data)),
		narSize:  int64(len(buf.Bytes())),
		listing:  listing,
	}, nil
}
