package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
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

	// List calls fn once for every object whose key starts with prefix
	// ("" lists everything), reading the listing a page at a time, so memory
	// does not grow with the number of objects. The order is the backend's
	// (S3: ascending key order). A listing is not a snapshot: objects written
	// or deleted while it runs may or may not appear, and callers that act on
	// what is missing must confirm it with Has. Unfinished writes (a local
	// temporary file, an S3 multipart upload) are never listed; see
	// PendingLister. If fn returns an error, List stops and returns that
	// error unwrapped. A prefix that CheckKey would reject (other than a
	// trailing "/") is an error.
	List(ctx context.Context, prefix string, fn func(Object) error) error

	// Delete removes key. Deleting a missing key is not an error, as in S3.
	// Once Delete returns nil the object is gone for every later Has, Get
	// and List (local: the directory entry's removal is fsynced).
	Delete(ctx context.Context, key string) error

	// String names the cache for logs and status, never with credentials.
	String() string
}

// ContentEncoder is implemented by caches that serve each object with the
// Content-Encoding it was put with (S3), so that HTTP clients decode it.
type ContentEncoder interface {
	ServesContentEncoding() bool
}

// TopLister is implemented by caches that list cheaply over a network: one
// request per 1,000 keys (S3). ListTop is Cache.List without descending below
// a "/" after prefix, so listing "a" finds "a….narinfo" keys but nothing
// under "nar/". The uploader uses it to look up large closures by listing
// narinfos instead of asking for each one; see Uploader.UploadBatch.
type TopLister interface {
	ListTop(ctx context.Context, prefix string, fn func(Object) error) error
}

// Object is one entry of a listing.
type Object struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// PendingUpload is a write that was started and never finished: an S3
// multipart upload that was neither completed nor aborted, or a temporary
// file a crashed writer left in a local cache directory. It costs storage
// but is invisible to readers.
type PendingUpload struct {
	// Key is the object the write was meant to create.
	Key string
	// ID identifies the write: the S3 upload ID, or the temporary file's
	// key.
	ID string
	// Started is when the write began (local: the file's modification
	// time, that is its last write).
	Started time.Time
}

// PendingLister is implemented by backends whose unfinished writes leave
// something behind. A live write of another process looks the same as an
// abandoned one, so callers abort only writes older than a grace period.
type PendingLister interface {
	// ListPending calls fn for every unfinished write whose key starts with
	// prefix, with the same paging and error rules as Cache.List.
	ListPending(ctx context.Context, prefix string, fn func(PendingUpload) error) error
	// AbortPending discards an unfinished write. One that is already gone
	// (completed, aborted or removed meanwhile) is not an error.
	AbortPending(ctx context.Context, p PendingUpload) error
}

// CheckPrefix reports whether prefix may be listed: empty, or a key
// (CheckKey) optionally followed by "/".
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := CheckKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("uploader: invalid listing prefix %q", prefix)
	}
	return nil
}

// PutOptions describe the body given to Cache.Put.
type PutOptions struct {
	// ContentType is the MIME type served with the object (S3 only; local
	// directories have no metadata).
	ContentType string

	// ContentEncoding is the Content-Encoding served with the object
	// ("gzip"), for caches that are ContentEncoders; others store no
	// metadata, so callers must not send them encoded bodies.
	ContentEncoding string

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
