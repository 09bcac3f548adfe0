package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Cache is where the pipeline publishes. Keys are relative slash-separated
// paths such as "nix-cache-info", "<hashpart>.narinfo" and
// "nar/<x>.nar.zst"; backends refuse keys that CheckKey rejects.
//
// Implementations are safe for concurrent use by multiple goroutines. Every
// backend passes the conformance suite in package cachetest.
type Cache interface {
	// Has reports whether key exists. A missing key is (false, nil). For S3
	// both 404 and 403 mean missing, because buckets whose credentials lack
	// s3:ListBucket answer 403 for absent keys.
	Has(ctx context.Context, key string) (bool, error)

	// Put stores body at key, reading it to EOF. Writes are atomic: readers
	// see either the old object or the whole new one, never a prefix. If
	// reading body fails, or opt.Size is set and body has a different length,
	// or ctx is cancelled, nothing is committed at key (a multipart upload is
	// aborted, a temporary file removed) and the error is returned wrapped,
	// so errors.Is finds the reader's error.
	Put(ctx context.Context, key string, body io.Reader, opt PutOptions) error

	// Get opens key for reading; the caller closes it. A missing key gives an
	// error wrapping fs.ErrNotExist.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// String names the cache for logs and status, never with credentials.
	String() string
}

// PutOptions describe the body given to Cache.Put.
type PutOptions struct {
	// ContentType is the MIME type served with the object (S3 only; local
	// directories have no metadata).
	ContentType string

	// Size is the exact length of the body, or -1 when streaming a body of
	// unknown length. A body whose length differs from a given Size is an
	// error and commits nothing.
	Size int64

	// SizeHint is an upper bound of a streaming body's length (for a
	// compressed NAR, its NarSize), used to pick a multipart part size large
	// enough to stay under S3's 10,000-part limit. 0 means unknown.
	SizeHint int64
}

// CheckKey reports whether key is a valid cache key: non-empty, relative,
// slash-separated, without empty, "." or ".." segments, backslashes or NUL
// bytes. Backends call it before touching storage so that no key can
// escape the cache root.
func CheckKey(key string) error {
	if key == "" {
		return errors.New("uploader: empty cache key")
	}
	if strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("uploader: invalid cache key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("uploader: invalid cache key %q: want a relative path without empty, . or .. segments", key)
		}
	}
	return nil
}
