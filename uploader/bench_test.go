package uploader

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
)

// discardCache accepts everything and keeps nothing, so that a benchmark
// measures the pipeline (dump, hash, compress, sign), not storage.
type discardCache struct{}

func (discardCache) Has(context.Context, string) (bool, error) { return false, nil }

func (discardCache) Put(_ context.Context, _ string, body io.Reader, _ PutOptions) error {
	_, err := io.Copy(io.Discard, body)
	return err
}

func (discardCache) Get(_ context.Context, key string) (io.ReadCloser, error) {
	return nil, fmt.Errorf("discard: %s: %w", key, fs.ErrNotExist)
}

func (discardCache) List(context.Context, string, func(Object) error) error { return nil }

func (discardCache) Delete(context.Context, string) error { return nil }

func (discardCache) String() string { return "discard://" }

// BenchmarkUploadPipeline uploads a closure of eight 1 MiB paths (half
// compressible text, half random bytes) to a cache that discards it.
func BenchmarkUploadPipeline(b *testing.B) {
	s := newFakeStore(b)
	rng := rand.New(rand.NewPCG(5, 6))
	var paths []string
	var total int64
	for i := range 8 {
		var content string
		if i%2 == 0 {
			content = strings.Repeat(fmt.Sprintf("line %d of some build output\n", i), 1<<20/30)
		} else {
			buf := make([]byte, 1<<20)
			for j := range buf {
				buf[j] = byte(rng.UintN(256))
			}
			content = string(buf)
		}
		p := s.add(b, fmt.Sprintf("path%d", i), map[string]string{"data": content})
		paths = append(paths, p)
		total += int64(s.info(p).NarSize)
	}
	root := s.add(b, "root", map[string]string{"f": "root"}, paths...)
	key, err := nix.GenerateKey("bench-1")
	if err != nil {
		b.Fatal(err)
	}
	for _, compression := range []string{"none", "zstd", "xz"} {
		b.Run(compression, func(b *testing.B) {
			cfg := testConfig(s.dir)
			cfg.Compression = compression
			u, err := New(cfg, discardCache{}, s, nil, key, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(total)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := u.Upload(context.Background(), root); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
