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
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
)

const (
	narContentType     = "application/x-nix-nar"
	listingContentType = "application/json"
)

// narResult describes a NAR stored in the cache.
type narResult struct {
	url      string
	fileHash nix.Hash // of the compressed stream
	fileSize int64
	narSize  int64
	// listing is the NAR's listing, recorded while streaming when
	// Config.WriteNarListing is set and the NAR was verified; nil otherwise.
	listing *nix.Listing
}

// narKey is the cache key of a NAR: derived from the NarHash, which is known
// before compression starts, so the upload can stream.
func narKey(narHash nix.Hash, ext string) string {
	return "nar/" + nix.EncodeBase32(narHash.Digest) + ".nar" + ext
}

// narSizeHint bounds the compressed size of a NAR of n bytes: compressors
// expand incompressible input by a small fraction plus framing.
func narSizeHint(n uint64) int64 {
	return int64(n + n/64 + 64<<10)
}

// errPutReturned unblocks a producer whose reader is gone.
var errPutReturned = errors.New("uploader: cache stopped reading the NAR stream")

// putNAR streams the NAR of info into the cache: DumpPath → sha256 and count
// → compressor → sha256 and count → pipe → Cache.Put. Nothing is buffered
// beyond the compressor's window and the cache's part buffers. The NAR is
// checked against info's NarHash and NarSize when the dump ends; on mismatch
// the pipe fails before the compressed stream ends, so the cache commits
// nothing, and the error wraps ErrHashMismatch. The caller holds one of the
// Concurrency slots; handedOver is called (from another goroutine) once
// the compressed stream has ended and the cache has read all of it, so that
// the caller can give the slot to the next NAR while this one's last
// request is still on the wire.
func (u *Uploader) putNAR(ctx context.Context, info *PathInfo, log *zap.Logger, handedOver func()) (narResult, error) {
	tr := u.startTransfer(info)
	defer u.endTransfer(tr)

	key := narKey(info.NarHash, u.codec.ext)
	log.Debug("streaming NAR", zap.String("key", key), zap.Uint64("nar_size", info.NarSize))
	pr, pw := io.Pipe()
	sink := &sinkWriter{w: pw}
	res := narResult{url: key}
	type outcome struct {
		err error
		own bool
	}
	produced := make(chan outcome, 1)
	go func() {
		own, err := u.produceNAR(pw, sink, info, tr, &res)
		if err == nil {
			handedOver()
		}
		produced <- outcome{err, own}
	}()

	// Size is -1 even for uncompressed NARs, whose length is known: a cache
	// that stops reading at a given length could commit a NAR before the
	// hash check below has had the chance to fail the stream.
	putErr := u.cache.Put(ctx, key, pr, PutOptions{
		ContentType: narContentType,
		Size:        -1,
		SizeHint:    narSizeHint(info.NarSize),
	})
	pr.CloseWithError(errPutReturned) // no-op once the stream ended
	prod := <-produced

	switch {
	case prod.err != nil && prod.own:
		return narResult{}, prod.err // the cause; Put saw it as a read error
	case putErr != nil:
		return narResult{}, fmt.Errorf("uploader: put %s for %s: %w", key, info.Path, putErr)
	case prod.err != nil:
		return narResult{}, fmt.Errorf("uploader: put %s for %s: %w", key, info.Path, prod.err)
	}
	return res, nil
}

// produceNAR writes the compressed NAR of info into pw and closes pw: with
// nil after a verified dump, or with the error. own reports that the failure
// started here (dump, hash check, compressor) rather than in the pipe's
// reader, whose error is then Put's to report.
func (u *Uploader) produceNAR(pw *io.PipeWriter, sink *sinkWriter, info *PathInfo, tr *transfer, res *narResult) (own bool, err error) {
	fail := func(err error) (bool, error) {
		own := !sink.failed()
		pw.CloseWithError(err)
		return own, err
	}
	fileHash := sha256.New()
	compressed := &countingWriter{w: io.MultiWriter(sink, fileHash)}
	cw, err := u.codec.wrap(compressed)
	if err != nil {
		return fail(err)
	}
	defer cw.Abandon() // no-op after a successful Close
	narHash := sha256.New()
	nar := &countingWriter{w: io.MultiWriter(cw, narHash), progress: &tr.read}
	var listing *nix.Listing
	if u.cfg.WriteNarListing {
		listing, err = nix.DumpPathListing(nar, info.Path)
	} else {
		err = nix.DumpPath(nar, info.Path)
	}
	if err != nil {
		if _, statErr := os.Lstat(info.Path); errors.Is(statErr, fs.ErrNotExist) {
			return fail(fmt.Errorf("uploader: dump %s: %w: %w", info.Path, ErrPathGone, err))
		}
		return fail(fmt.Errorf("uploader: dump %s: %w", info.Path, err))
	}
	got := nix.NewSHA256(narHash.Sum(nil))
	if n := nar.n.Load(); uint64(n) != info.NarSize || !got.Equal(info.NarHash) {
		// Fail the stream before the compressor writes its end: the cache
		// then sees a read error instead of EOF and commits nothing.
		err := fmt.Errorf("uploader: %s: NAR is %s (%d bytes) but the store records %s (%d bytes): %w",
			info.Path, got, n, info.NarHash, info.NarSize, ErrHashMismatch)
		pw.CloseWithError(err)
		return true, err
	}
	if err := cw.Close(); err != nil {
		return fail(fmt.Errorf("uploader: compress %s: %w", info.Path, err))
	}
	res.fileHash = nix.NewSHA256(fileHash.Sum(nil))
	res.fileSize = compressed.n.Load()
	res.narSize = nar.n.Load()
	res.listing = listing // only now that the NAR is known to be the store's
	return false, pw.Close()
}

// listingKey is the cache key of a store path's NAR listing.
func listingKey(sp nix.StorePath) string { return sp.HashPart + ".ls" }

// putListing uploads the NAR listing of info, uncompressed, as Nix does. A
// failure is returned like any failed put, and fails the path.
func (u *Uploader) putListing(ctx context.Context, sp nix.StorePath, info *PathInfo, listing *nix.Listing) error {
	data, err := listing.MarshalJSON()
	if err != nil {
		return fmt.Errorf("uploader: listing of %s: %w", info.Path, err)
	}
	key := listingKey(sp)
	err = u.cache.Put(ctx, key, bytes.NewReader(data), PutOptions{
		ContentType: listingContentType,
		Size:        int64(len(data)),
		SizeHint:    int64(len(data)),
	})
	if err != nil {
		return fmt.Errorf("uploader: put %s for %s: %w", key, info.Path, err)
	}
	return nil
}

// countingWriter counts the bytes written through it, and adds them to
// progress when set. Compressors may write from their own goroutines, hence
// the atomics.
type countingWriter struct {
	w        io.Writer
	n        atomic.Int64
	progress *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	if c.progress != nil {
		c.progress.Add(int64(n))
	}
	return n, err
}

// sinkWriter remembers whether writing into the pipe failed, which means the
// reader (Cache.Put) gave up first.
type sinkWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (s *sinkWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
	return n, err
}

func (s *sinkWriter) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil
}
