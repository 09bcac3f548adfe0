package uploader

import (
	"errors"
	"time"
)

// Causes of cache failures, in terms that do not depend on the backend. A
// backend translates its own errors into them, beside its code (see
// BackendError), so that Classify, and every command that talks to a cache,
// can tell what went wrong with errors.Is without knowing the backend.
//
// File system failures need no translation: the local backend, the walk of
// the Nix store and any temporary file report them as the standard library
// does (fs.ErrPermission, syscall.EROFS, syscall.ENOSPC, ...), and Classify
// reads those directly.
var (
	// ErrAccessDenied: the credentials may not do what was asked (S3 403
	// AccessDenied, or a 403 without a code).
	ErrAccessDenied = errors.New("access denied")
	// ErrNoSuchBucket: the bucket named by the store URL does not exist.
	ErrNoSuchBucket = errors.New("no such bucket")
	// ErrUnknownAccessKey: the server does not know the access key ID.
	ErrUnknownAccessKey = errors.New("unknown access key ID")
	// ErrSignatureMismatch: the secret key does not match the access key ID.
	ErrSignatureMismatch = errors.New("request signature does not match")
	// ErrInvalidBucketName: the server refuses the bucket's name.
	ErrInvalidBucketName = errors.New("invalid bucket name")
	// ErrWrongRegion: the bucket lives in another region than the one asked.
	ErrWrongRegion = errors.New("wrong region")
	// ErrInvalidStorageClass: the server does not offer the storage class.
	ErrInvalidStorageClass = errors.New("invalid storage class")
	// ErrTooLarge: the object is too large for the request that carried it.
	ErrTooLarge = errors.New("object too large")
	// ErrNotSupported: the server does not implement an operation needed.
	ErrNotSupported = errors.New("operation not supported by the server")
	// ErrNoCredentials: no credentials could be found.
	ErrNoCredentials = errors.New("no credentials")
	// ErrCredentialsUnreachable: the credentials provider (instance
	// metadata, SSO) could not be reached.
	ErrCredentialsUnreachable = errors.New("credentials provider unreachable")
	// ErrCredentialsExpired: the credentials or the request's signature
	// expired.
	ErrCredentialsExpired = errors.New("credentials expired")
	// ErrClockSkew: this machine's clock is too far from the server's.
	ErrClockSkew = errors.New("clock skew")
	// ErrThrottled: the server asks for fewer requests (S3 SlowDown, HTTP
	// 429 or 503).
	ErrThrottled = errors.New("throttled")
	// ErrTimeout: the server reported that a request timed out.
	ErrTimeout = errors.New("request timed out")
	// ErrServer: the server failed (HTTP 5xx); BackendError.Status says how.
	ErrServer = errors.New("server error")
	// ErrNetwork: the request could not be sent or its answer not read.
	ErrNetwork = errors.New("network error")
)

// BackendError is a backend's error translated into a neutral cause. Its
// message is the backend's own; errors.Is finds both Kind and Err's chain,
// so callers may still look for the backend's own error types.
type BackendError struct {
	// Kind is one of the Err* causes above, or nil when the backend has
	// only a Retry-After to report.
	Kind error
	// Status is the HTTP status of the server's answer, or 0.
	Status int
	// Delay is how long the server asked to wait before retrying
	// (Retry-After), or 0.
	Delay time.Duration
	// Err is the backend's error.
	Err error
}

func (e *BackendError) Error() string { return e.Err.Error() }

// Unwrap returns Kind (when set) and Err.
func (e *BackendError) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// RetryAfter is the delay the server asked for, or 0.
func (e *BackendError) RetryAfter() time.Duration { return e.Delay }
