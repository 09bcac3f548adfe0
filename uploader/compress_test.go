package uploader

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompressionRoundTrip(t *testing.T) {
	s := newFakeStore(t)
	rng := rand.New(rand.NewPCG(3, 4))
	noise := make([]byte, 100_000)
	for i := range noise {
		noise[i] = byte(rng.UintN(256))
	}
	x := s.add(t, "mixed", map[string]string{
		"text":        strings.Repeat("compressible text ", 8_000),
		"noise":       string(noise),
		"bin/tool*":   "#!/bin/sh\necho hi\n",
		"empty":       "",
		"sub/dir/a.c": "int main(){}",
	})
	if err := os.Symlink("bin/tool", filepath.Join(x, "link")); err != nil {
		t.Fatal(err)
	}
	// The symlink changed the tree: record the hash again.
	s.info(x).NarHash, s.info(x).NarSize = dumpHash(t, x)
	want := dumpNAR(t, x)

	tests := []struct {
		compression string
		level       int
		ext         string
	}{
		{"none", 0, ""},
		{"zstd", 0, ".zst"},
		{"zstd", 1, ".zst"},
		{"zstd", 19, ".zst"},
		{"xz", 0, ".xz"},
		{"xz", 1, ".xz"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%d", tt.compression, tt.level), func(t *testing.T) {
			c := newFakeCache()
			cfg := testConfig(s.dir)
			cfg.Compression, cfg.CompressionLevel = tt.compression, tt.level
			u := newTestUploader(t, cfg, c, s, nil, nil)
			// Twice, so that pooled encoders are reused.
			for range 2 {
				c = newFakeCache()
				u.cache = c
				res, err := u.Upload(context.Background(), x)
				if err != nil {
					t.Fatal(err)
				}
				ni := checkCache(t, c, s.dir, nil)[keyOf(t, s.dir, x)]
				if ni == nil {
					t.Fatal("no narinfo")
				}
				if ni.Compression != tt.compression || !strings.HasSuffix(ni.URL, ".nar"+tt.ext) {
					t.Errorf("Compression %q, URL %q", ni.Compression, ni.URL)
				}
				obj, _ := c.object(ni.URL)
				if got := decompress(t, tt.compression, obj); !bytes.Equal(got, want) {
					t.Errorf("decompressed NAR differs from DumpPath output (%d vs %d bytes)", len(got), len(want))
				}
				if tt.compression == "none" && (!ni.FileHash.Equal(ni.NarHash) || ni.FileSize != ni.NarSize) {
					t.Errorf("uncompressed: FileHash %s/%d, NarHash %s/%d", ni.FileHash, ni.FileSize, ni.NarHash, ni.NarSize)
				}
				if tt.compression != "none" && ni.FileSize >= ni.NarSize {
					t.Errorf("%s did not compress: %d -> %d", tt.compression, ni.NarSize, ni.FileSize)
				}
				if res.Bytes != int64(ni.FileSize) || res.NarBytes != int64(ni.NarSize) {
					t.Errorf("result %+v, narinfo sizes %d/%d", res, ni.FileSize, ni.NarSize)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"zero", func(c *Config) { *c = Config{} }, true},
		{"defaults", func(*Config) {}, true},
		{"xz 9", func(c *Config) { c.Compression, c.CompressionLevel = "xz", 9 }, true},
		{"xz 10", func(c *Config) { c.Compression, c.CompressionLevel = "xz", 10 }, false},
		{"zstd 22", func(c *Config) { c.CompressionLevel = 22 }, true},
		{"zstd 23", func(c *Config) { c.CompressionLevel = 23 }, false},
		{"negative level", func(c *Config) { c.CompressionLevel = -1 }, false},
		{"none with level", func(c *Config) { c.Compression, c.CompressionLevel = "none", 3 }, false},
		{"bzip2", func(c *Config) { c.Compression = "bzip2" }, false},
		{"relative store", func(c *Config) { c.StoreDir = "nix/store" }, false},
		{"unclean store", func(c *Config) { c.StoreDir = "/nix/store/" }, false},
		{"root store", func(c *Config) { c.StoreDir = "/" }, false},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }, false},
		{"negative lookups", func(c *Config) { c.LookupConcurrency = -2 }, false},
		{"negative ttl", func(c *Config) { c.PresenceTTL = -1 }, false},
		{"negative priority", func(c *Config) { c.Priority = -1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.modify(&cfg)
			if err := cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			_, err := New(cfg, newFakeCache(), &fakeStore{}, nil, nil, nil)
			if (err == nil) != tt.ok {
				t.Errorf("New() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	d := DefaultConfig()
	if d.StoreDir != "/nix/store" || d.Compression != "zstd" || d.Concurrency != 4 || d.LookupConcurrency != 256 ||
		d.PresenceTTL.Hours() != 1 || d.Priority != 40 || !d.WantMassQuery {
		t.Errorf("DefaultConfig() = %+v", d)
	}
}
