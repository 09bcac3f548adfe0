package storeurl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nixs3q/nixs3q/uploader/s3"
)

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	return nil
}

func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
}

// parseBool accepts the spellings Nix accepts for boolean settings.
func parseBool(v string) (bool, error) {
	switch v {
	case "true", "yes", "1":
		return true, nil
	case "false", "no", "0":
		return false, nil
	}
	return false, errors.New("want true or false")
}

func applyCompression(s *Spec, v string) error {
	switch v {
	case CompressionZstd, CompressionXz, CompressionNone:
		s.Compression = v
		return nil
	case "br", "bzip2", "gzip", "lz4", "lzip", "lzma", "lzop", "compress", "grzip", "lrzip":
		return fmt.Errorf("compression %s is unsupported by nixs3q: use zstd, xz or none", v)
	}
	return errors.New("unknown compression: want zstd, xz or none")
}

// applyCompressionLevel checks the level against the compression method,
// so the order of compression and compression-level in the URL matters not:
// parameters are applied sorted by name, compression first.
func applyCompressionLevel(s *Spec, v string) error {
	level, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("want an integer")
	}
	if level == -1 {
		level = 0 // Nix's spelling of "the compressor's default"
	}
	var lo, hi int
	switch s.Compression {
	case CompressionZstd:
		lo, hi = 0, 22
	case CompressionXz:
		lo, hi = 0, 9
	default:
		lo, hi = 0, 0
	}
	if level < lo || level > hi {
		if hi == 0 {
			return fmt.Errorf("compression %s takes no level", s.Compression)
		}
		return fmt.Errorf("compression %s takes levels %d to %d (or -1 for the default)", s.Compression, lo+1, hi)
	}
	s.CompressionLevel = level
	return nil
}

func applyPriority(s *Spec, v string) error {
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 {
		return errors.New("want a non-negative integer")
	}
	s.Priority = p
	return nil
}

// applyChunkSize reads multipart-chunk-size: bytes, optionally with a K, M
// or G suffix (powers of 1024), between S3's 5 MiB and 5 GiB part limits.
func applyChunkSize(s *Spec, v string) error {
	mult := int64(1)
	num := v
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'K', 'k':
			mult, num = 1<<10, v[:n-1]
		case 'M', 'm':
			mult, num = 1<<20, v[:n-1]
		case 'G', 'g':
			mult, num = 1<<30, v[:n-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return errors.New("want a size in bytes, e.g. 16777216 or 16M")
	}
	size := n * mult
	if n > s3.MaxPartSize/mult || size < s3.MinPartSize || size > s3.MaxPartSize {
		return errors.New("want a size between 5M and 5G")
	}
	s.S3.PartSize = size
	return nil
}
