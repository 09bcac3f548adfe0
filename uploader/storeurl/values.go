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
	case "br", "bzip2", "gzip", "lz4", "lzip", "lzma", "lzop", "compress", "grzip", "lrzip":
		return fmt.Errorf("compression %s is unsupported by nixs3q: use zstd, xz or none", v)
	}
	s.Format.Compression = v
	return s.Format.Validate()
}

// applyCompressionLevel sets the level; uploader.Format.Validate checks it
// against the compression method. Parameters are applied sorted by name,
// compression first, so their order in the URL does not matter.
func applyCompressionLevel(s *Spec, v string) error {
	level, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("want an integer")
	}
	if level == -1 {
		level = 0 // Nix's spelling of "the compressor's default"
	}
	s.Format.CompressionLevel = level
	return s.Format.Validate()
}

// applyParallelCompression checks the value and reports the parameter as
// ignored: nixs3q already compresses as many NARs at once as it uploads
// (uploader.Config.Concurrency), each stream on one core, which measured
// faster than several threads per stream when streams share the cores.
func applyParallelCompression(s *Spec, v string) error {
	if _, err := parseBool(v); err != nil {
		return err
	}
	s.Ignored = append(s.Ignored, "parallel-compression")
	return nil
}

func applyPriority(s *Spec, v string) error {
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 {
		return errors.New("want a non-negative integer")
	}
	s.Format.Priority = p
	return s.Format.Validate()
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
