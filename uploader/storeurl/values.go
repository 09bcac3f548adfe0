package storeurl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
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
	size, err := uploader.ParseSize(v)
	if err != nil || size == 0 {
		return errors.New("want a size in bytes, e.g. 16777216 or 16M")
	}
	if size < s3.MinPartSize || size > s3.MaxPartSize {
		return errors.New("want a size between 5M and 5G")
	}
	s.S3.PartSize = size
	return nil
}

// maxUint32 is the largest value of Nix's uint32 settings (retry-*).
const maxUint32 = 1<<32 - 1

func parseUint32(v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("want an integer from 0 to %d", uint64(maxUint32))
	}
	return n, nil
}

// applyRetryAttempts sets how often one S3 request is attempted
// (retry-attempts, Nix's per-store filetransfer-retry-attempts); 0 keeps
// the default.
func applyRetryAttempts(s *Spec, v string) error {
	n, err := parseUint32(v)
	if err != nil {
		return err
	}
	s.S3.MaxAttempts = int(n)
	return nil
}

// applyMillis returns the apply function of a retry delay given in
// milliseconds, as Nix's retry-delay, retry-delay-rate-limited and
// retry-max-delay are; 0 keeps the default.
func applyMillis(field func(*Spec) *time.Duration) func(*Spec, string) error {
	return func(s *Spec, v string) error {
		n, err := parseUint32(v)
		if err != nil {
			return fmt.Errorf("milliseconds: %w", err)
		}
		*field(s) = time.Duration(n) * time.Millisecond
		return nil
	}
}

// ignoreSize checks a byte size as Nix would and reports the parameter as
// ignored. multipart-threshold is one: Nix buffers a file below it to send
// it with one PUT; nixs3q streams NARs of unknown compressed size, and sends
// anything up to one part (multipart-chunk-size) with one PUT already.
func ignoreSize(name string) func(*Spec, string) error {
	return func(s *Spec, v string) error {
		if _, err := uploader.ParseSize(v); err != nil {
			return err
		}
		s.Ignored = append(s.Ignored, name)
		return nil
	}
}

// ignoreUint checks a non-negative integer and reports the parameter as
// ignored. narinfo-cache-meta-ttl is one: it is how long a client caches
// nix-cache-info, which concerns readers only.
func ignoreUint(name string) func(*Spec, string) error {
	return func(s *Spec, v string) error {
		if _, err := parseUint32(v); err != nil {
			return err
		}
		s.Ignored = append(s.Ignored, name)
		return nil
	}
}
