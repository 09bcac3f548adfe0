package verify

import (
	"compress/bzip2"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan"
)

// errUnsupported reports a compression hashNar cannot decode.
var errUnsupported = errors.New("compression not supported")

// narSum is what hashing one NAR object found.
type narSum struct {
	fileHash nix.Hash // of the object as stored
	fileSize int64
	narHash  nix.Hash // of the decompressed NAR
	narSize  int64
}

// hashNars downloads every NAR that the listing shows with the right size,
// NarConcurrency at once, each once however many narinfos share it, and
// returns the narinfos whose NAR does not match them as candidates.
func (c *checker) hashNars(ctx context.Context, g *scan.Graph, r *Report) ([]candidate, error) {
	type group struct {
		url, compression string
		ids              []scan.ID
	}
	byKey := make(map[string]*group)
	for i := range g.Len() {
		id := scan.ID(i)
		if g.NarStatus(id) != scan.NarOK {
			continue
		}
		n := g.Node(id)
		k := n.URL + "\x00" + n.Compression
		if byKey[k] == nil {
			byKey[k] = &group{url: n.URL, compression: n.Compression}
		}
		byKey[k].ids = append(byKey[k].ids, id)
	}
	groups := make([]*group, 0, len(byKey))
	for _, gr := range byKey {
		groups = append(groups, gr)
	}
	slices.SortFunc(groups, func(a, b *group) int {
		if a.url < b.url {
			return -1
		}
		if a.url > b.url {
			return 1
		}
		return 0
	})

	var mu sync.Mutex
	var out []candidate
	pp := c.startProgress(PhaseHash, len(groups))
	err := parallel(ctx, c.cfg.NarConcurrency, len(groups), func(ctx context.Context, i int) error {
		gr := groups[i]
		sum, err := c.hashNar(ctx, gr.url, gr.compression)
		pp.add(1, sum.fileSize)
		mu.Lock()
		defer mu.Unlock()
		r.HashedBytes += sum.fileSize
		var readErr *narReadError
		switch {
		case errors.Is(err, errUnsupported):
			r.NarsNotHashed++
			return nil
		case errors.Is(err, fs.ErrNotExist):
			for _, id := range gr.ids {
				n := g.Node(id)
				out = append(out, candidate{
					p: Problem{Kind: NarMissing, Key: n.Key(), StorePath: g.StorePath(id), Other: gr.url, node: id,
						Detail: "its NAR " + gr.url + " is missing"},
					confirm: c.confirmNarMissing,
				})
			}
			return nil
		case errors.As(err, &readErr):
			return err
		}
		r.NarsHashed++
		for _, id := range gr.ids {
			n := g.Node(id)
			detail := ""
			switch {
			case err != nil:
				detail = fmt.Sprintf("its NAR %s cannot be decompressed as %s: %v", gr.url, gr.compression, err)
			case !n.FileHash.IsZero() && n.FileHash.Algo == "sha256" && !n.FileHash.Equal(sum.fileHash):
				detail = fmt.Sprintf("its NAR %s hashes to %s, but FileHash is %s", gr.url, sum.fileHash, n.FileHash)
			case uint64(sum.narSize) != n.NarSize || !n.NarHash.Equal(sum.narHash):
				detail = fmt.Sprintf("its NAR %s decompresses to %s (%d bytes), but the narinfo says %s (%d bytes)",
					gr.url, sum.narHash, sum.narSize, n.NarHash, n.NarSize)
			default:
				continue
			}
			out = append(out, candidate{
				p:       Problem{Kind: NarHash, Key: n.Key(), StorePath: g.StorePath(id), Other: gr.url, node: id, Detail: detail},
				confirm: c.confirmNarHash(n),
			})
		}
		return nil
	})
	pp.stop()
	if err != nil {
		return nil, fmt.Errorf("verify: check NAR hashes: %w", err)
	}
	return out, nil
}

// confirmNarHash confirms a hash mismatch found for node n: the narinfo
// read again still names the same NAR with the same hashes and size (a
// NAR key is derived from its NarHash, so a rewritten narinfo for a new
// NAR names another key).
func (c *checker) confirmNarHash(n *scan.Node) func(context.Context, *Problem) (bool, error) {
	return func(ctx context.Context, p *Problem) (bool, error) {
		f, err := c.narinfo(ctx, p.Key)
		if err != nil || f.ni == nil {
			return false, err
		}
		ni := f.ni
		same := ni.URL == n.URL && ni.NarHash.Equal(n.NarHash) && ni.NarSize == n.NarSize && ni.FileHash.Equal(n.FileHash)
		return same, nil
	}
}

// narReadError is a failure to read a NAR from the cache, as opposed to a
// NAR that cannot be decoded.
type narReadError struct{ err error }

func (e *narReadError) Error() string { return e.err.Error() }
func (e *narReadError) Unwrap() error { return e.err }

// hashNar downloads key and hashes it and its decompressed contents. A
// missing key gives an error wrapping fs.ErrNotExist, a failing read a
// *narReadError, an unknown compression errUnsupported; any other error
// means the object cannot be decompressed. The sum holds what was read.
func (c *checker) hashNar(ctx context.Context, key, compression string) (narSum, error) {
	switch compression {
	case "none", "xz", "zstd", "bzip2":
	default:
		return narSum{}, fmt.Errorf("%s: %w", compression, errUnsupported)
	}
	rc, err := c.cache.Get(ctx, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return narSum{}, err
		}
		return narSum{}, &narReadError{fmt.Errorf("read %s: %w", key, err)}
	}
	defer rc.Close()
	file := &hashingReader{r: rc, h: sha256.New()}
	var sum narSum
	var dec io.Reader
	var closeDec func()
	switch compression {
	case "none":
		dec = file
	case "xz":
		xr, err := xz.NewReader(file)
		if err != nil {
			return c.decodeFailure(file, sum, err)
		}
		dec = xr
	case "zstd":
		zr, err := zstd.NewReader(file, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return c.decodeFailure(file, sum, err)
		}
		dec, closeDec = zr, zr.Close
	case "bzip2":
		dec = bzip2.NewReader(file)
	}
	if closeDec != nil {
		defer closeDec()
	}
	nar := sha256.New()
	n, err := io.Copy(nar, dec)
	if err != nil {
		return c.decodeFailure(file, sum, err)
	}
	// Whatever follows the compressed stream is part of the object too.
	if _, err := io.Copy(io.Discard, file); err != nil {
		return c.decodeFailure(file, sum, err)
	}
	sum.narHash, sum.narSize = nix.NewSHA256(nar.Sum(nil)), n
	sum.fileHash, sum.fileSize = nix.NewSHA256(file.h.Sum(nil)), file.n
	return sum, nil
}

func (c *checker) decodeFailure(file *hashingReader, sum narSum, err error) (narSum, error) {
	sum.fileSize = file.n
	if file.err != nil {
		return sum, &narReadError{file.err}
	}
	return sum, err
}

// hashingReader hashes and counts what is read through it and remembers
// the underlying reader's error.
type hashingReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if err != nil && err != io.EOF {
		h.err = err
	}
	return n, err
}
