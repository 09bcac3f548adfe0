// Package scantest writes synthetic but valid binary cache contents for the
// tests and benchmarks of the packages that read whole caches (scan, verify,
// gc): store paths with real NARs of one regular file each, compressed as
// asked, and narinfos signed like nixs3q signs them. Nothing here runs Nix.
package scantest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"path"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
)

// Path is a synthetic store path.
type Path struct {
	StorePath string // full path
	HashPart  string
	Base      string // "<hash>-<name>"
	Refs      []*Path
	SelfRef   bool
	NAR       []byte // the uncompressed NAR
	NarHash   nix.Hash
}

// NewPath returns a store path in storeDir named name whose NAR holds one
// regular file with contents. Its hash part is derived from name and
// contents, so equal inputs give equal paths.
func NewPath(storeDir, name string, contents []byte, refs ...*Path) *Path {
	h := sha256.Sum256(append([]byte(name+"\x00"), contents...))
	hash := nix.EncodeBase32(h[:20])
	nar := FileNAR(contents)
	sum := sha256.Sum256(nar)
	return &Path{
		StorePath: path.Join(storeDir, hash+"-"+name),
		HashPart:  hash,
		Base:      hash + "-" + name,
		Refs:      refs,
		NAR:       nar,
		NarHash:   nix.NewSHA256(sum[:]),
	}
}

// FileNAR returns the NAR serialisation of a regular, non-executable file.
func FileNAR(contents []byte) []byte {
	var b bytes.Buffer
	str := func(s []byte) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		b.Write(n[:])
		b.Write(s)
		if pad := (8 - len(s)%8) % 8; pad > 0 {
			b.Write(make([]byte, pad))
		}
	}
	for _, tok := range []string{"nix-archive-1", "(", "type", "regular", "contents"} {
		str([]byte(tok))
	}
	str(contents)
	str([]byte(")"))
	return b.Bytes()
}

// Writer publishes synthetic paths into a cache the way nixs3q does: NAR
// first, then the signed narinfo.
type Writer struct {
	Cache       uploader.Cache
	StoreDir    string         // default nix.DefaultStoreDir
	Key         *nix.SecretKey // signs narinfos; nil: unsigned
	Compression string         // "none" (default), "zstd" or "xz"
}

func (w *Writer) storeDir() string {
	if w.StoreDir == "" {
		return nix.DefaultStoreDir
	}
	return w.StoreDir
}

// NarInfo returns the narinfo of p and its compressed NAR, without writing
// anything.
func (w *Writer) NarInfo(p *Path) (*nix.NarInfo, []byte, error) {
	comp, ext := w.Compression, ""
	var file []byte
	switch comp {
	case "", "none":
		comp, file = "none", p.NAR
	case "zstd":
		ext = ".zst"
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			return nil, nil, err
		}
		file = enc.EncodeAll(p.NAR, nil)
		enc.Close()
	case "xz":
		ext = ".xz"
		var b bytes.Buffer
		xw, err := xz.NewWriter(&b)
		if err != nil {
			return nil, nil, err
		}
		if _, err := xw.Write(p.NAR); err != nil {
			return nil, nil, err
		}
		if err := xw.Close(); err != nil {
			return nil, nil, err
		}
		file = b.Bytes()
	default:
		return nil, nil, fmt.Errorf("scantest: unknown compression %q", comp)
	}
	fh := sha256.Sum256(file)
	ni := &nix.NarInfo{
		StorePath:   p.StorePath,
		URL:         "nar/" + nix.EncodeBase32(p.NarHash.Digest) + ".nar" + ext,
		Compression: comp,
		FileHash:    nix.NewSHA256(fh[:]),
		FileSize:    uint64(len(file)),
		NarHash:     p.NarHash,
		NarSize:     uint64(len(p.NAR)),
	}
	for _, r := range p.Refs {
		ni.References = append(ni.References, r.Base)
	}
	if p.SelfRef {
		ni.References = append(ni.References, p.Base)
	}
	if w.Key != nil {
		if err := ni.Sign(w.storeDir(), w.Key); err != nil {
			return nil, nil, err
		}
	}
	return ni, file, nil
}

// Publish writes p's NAR and then its narinfo, and returns the narinfo. It
// does not publish p's references.
func (w *Writer) Publish(ctx context.Context, p *Path) (*nix.NarInfo, error) {
	ni, file, err := w.NarInfo(p)
	if err != nil {
		return nil, err
	}
	if err := w.Cache.Put(ctx, ni.URL, bytes.NewReader(file), uploader.PutOptions{Size: int64(len(file))}); err != nil {
		return nil, err
	}
	if err := w.PutNarInfo(ctx, ni); err != nil {
		return nil, err
	}
	return ni, nil
}

// PutNarInfo writes ni at the key its store path's hash part names.
func (w *Writer) PutNarInfo(ctx context.Context, ni *nix.NarInfo) error {
	text, err := ni.MarshalText()
	if err != nil {
		return err
	}
	return w.PutRaw(ctx, path.Base(ni.StorePath)[:32]+".narinfo", text)
}

// PutRaw writes data at key.
func (w *Writer) PutRaw(ctx context.Context, key string, data []byte) error {
	return w.Cache.Put(ctx, key, bytes.NewReader(data), uploader.PutOptions{Size: int64(len(data))})
}

// PutCacheInfo writes a nix-cache-info for storeDir.
func (w *Writer) PutCacheInfo(ctx context.Context) error {
	return w.PutRaw(ctx, "nix-cache-info", []byte("StoreDir: "+w.storeDir()+"\nWantMassQuery: 1\nPriority: 40\n"))
}

// Get reads key whole.
func Get(ctx context.Context, c uploader.Cache, key string) ([]byte, error) {
	rc, err := c.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
