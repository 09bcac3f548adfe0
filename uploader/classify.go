package uploader

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrHashMismatch reports that the NAR streamed from the store does not hash
// to the NarHash and NarSize the store's database records. The pipeline wraps
// it; Classify makes it permanent, because retrying reads the same bytes.
var ErrHashMismatch = errors.New("uploader: NAR does not match the store's recorded NarHash/NarSize")

// Class is the verdict of Classify on one failed attempt.
type Class struct {
	// Permanent means retrying cannot help until someone changes something:
	// the item goes to the failed list instead of being retried.
	Permanent bool
	// RetryAfter is the delay the server asked for (Retry-After header), or 0.
	RetryAfter time.Duration
	// Reason is a short user-facing sentence saying what is wrong and what
	// to fix. It never contains credentials.
	Reason string
	// Code names the cause in one word, for metric labels and scripts:
	// hash_mismatch, path_gone, access_denied, no_bucket, credentials,
	// throttled, timeout, network, ... and "other" for the unknown.
	Code string
}

// reasonCodes gives each Reason its Code.
var reasonCodes = map[string]string{
	reasonHashMismatch: "hash_mismatch",
	reasonPathGone:     "path_gone",
	reasonStoreDir:     "store_dir",
	reasonCanceled:     "canceled",
	reasonAccessDenied: "access_denied",
	reasonNoBucket:     "no_bucket",
	reasonAccessKey:    "credentials",
	reasonSignature:    "credentials",
	reasonBucketName:   "bad_bucket_name",
	reasonRegion:       "wrong_region",
	reasonStorageClass: "storage_class",
	reasonTooLarge:     "too_large",
	reasonNotSupported: "not_supported",
	reasonNoCreds:      "credentials",
	reasonCredsNet:     "credentials_provider",
	reasonExpired:      "credentials_expired",
	reasonClockSkew:    "clock_skew",
	reasonThrottled:    "throttled",
	reasonReadOnly:     "read_only",
	reasonPermission:   "permission",
	reasonNoSpace:      "no_space",
	reasonTimeout:      "timeout",
	reasonNetwork:      "network",
	reasonUnknown:      "other",
}

// Reasons shown to users, one per cause.
const (
	reasonHashMismatch = "the store path's contents do not match the NarHash in the Nix database: repair it with nix-store --verify --check-contents --repair"
	reasonStoreDir     = "the cache's nix-cache-info names another store directory: use another bucket or directory for this store"
	reasonPathGone     = "the store path is no longer valid in the Nix store (garbage-collected?): rebuild it, or keep it with a GC root, and push again"
	reasonCanceled     = "the upload was cancelled (daemon stopping); it is retried later"
	reasonAccessDenied = "access denied writing to the bucket: check the credentials' s3:PutObject permission"
	reasonNoBucket     = "bucket does not exist: create it or fix the store URL"
	reasonAccessKey    = "the server does not know the access key ID: check AWS_ACCESS_KEY_ID or the profile's credentials"
	reasonSignature    = "the secret access key does not match the access key ID: check AWS_SECRET_ACCESS_KEY or the profile's credentials"
	reasonBucketName   = "invalid bucket name: fix the store URL"
	reasonRegion       = "the bucket is in another region: set region= in the store URL"
	reasonStorageClass = "the server does not support this storage class: fix storage-class= in the store URL"
	reasonTooLarge     = "object too large for a single upload: enable multipart-upload in the store URL"
	reasonNotSupported = "the server does not implement an S3 operation nixs3q needs: use another server or endpoint"
	reasonNoCreds      = "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, use profile= with credentials, or attach an instance role"
	reasonCredsNet     = "could not reach the credentials provider (instance metadata or SSO); it is retried"
	reasonExpired      = "the credentials expired; they are refreshed and the upload retried"
	reasonClockSkew    = "this machine's clock differs too much from the server's: fix the clock (NTP); it is retried"
	reasonThrottled    = "the server is throttling requests; it is retried after a delay"
	reasonReadOnly     = "the cache directory is on a read-only file system: remount it read-write or choose another directory"
	reasonPermission   = "permission denied on a local file: let the daemon's user read the store and write the cache directory"
	reasonNoSpace      = "no space left on the cache's file system: free some space; it is retried"
	reasonTimeout      = "timed out talking to the cache; it is retried"
	reasonNetwork      = "network error talking to the cache; it is retried"
	reasonUnknown      = "unexpected error; it is retried"
)

// Classify decides whether a failed upload attempt is permanent or transient.
// It is the only place nixs3q makes that decision; it looks through wrapped
// errors and never blocks. Unknown errors are transient, so a surprise
// costs a retry rather than a lost path. A nil error gives the zero Class.
func Classify(err error) Class {
	if err == nil {
		return Class{}
	}
	c := classify(err)
	if c.Code = reasonCodes[c.Reason]; c.Code == "" {
		c.Code = "other"
	}
	if !c.Permanent {
		c.RetryAfter = RetryAfter(err, time.Now())
	}
	return c
}

func classify(err error) Class {
	permanent := func(reason string) Class { return Class{Permanent: true, Reason: reason} }
	transient := func(reason string) Class { return Class{Reason: reason} }

	if errors.Is(err, ErrHashMismatch) {
		return permanent(reasonHashMismatch)
	}
	if errors.Is(err, ErrPathGone) {
		return permanent(reasonPathGone)
	}
	if errors.Is(err, ErrStoreDirMismatch) {
		return permanent(reasonStoreDir)
	}
	if errors.Is(err, context.Canceled) {
		return transient(reasonCanceled)
	}

	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "AccessDenied", "AllAccessDisabled", "Forbidden":
			return permanent(reasonAccessDenied)
		case "NoSuchBucket":
			return permanent(reasonNoBucket)
		case "InvalidAccessKeyId":
			return permanent(reasonAccessKey)
		case "SignatureDoesNotMatch":
			return permanent(reasonSignature)
		case "InvalidBucketName":
			return permanent(reasonBucketName)
		case "AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException":
			return permanent(reasonRegion)
		case "InvalidStorageClass":
			return permanent(reasonStorageClass)
		case "EntityTooLarge":
			return permanent(reasonTooLarge)
		case "NotImplemented":
			return permanent(reasonNotSupported)
		case "RequestTimeout", "RequestTimeoutException":
			return transient(reasonTimeout)
		case "RequestTimeTooSkewed":
			return transient(reasonClockSkew)
		case "ExpiredToken", "TokenRefreshRequired", "RequestExpired":
			return transient(reasonExpired)
		case "SlowDown", "Throttling", "ThrottlingException", "TooManyRequestsException",
			"RequestLimitExceeded", "BandwidthLimitExceeded", "RequestThrottled":
			return transient(reasonThrottled)
		}
	}

	switch status := httpStatus(err); {
	case status == http.StatusForbidden:
		return permanent(reasonAccessDenied)
	case status == http.StatusMovedPermanently:
		return permanent(reasonRegion)
	case status == http.StatusNotImplemented:
		return permanent(reasonNotSupported)
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return transient(reasonThrottled)
	case status >= 500:
		return transient(fmt.Sprintf("the server failed (HTTP %d); it is retried", status))
	}

	if isCredentialsError(err) {
		if isNetworkError(err) {
			return transient(reasonCredsNet)
		}
		return permanent(reasonNoCreds)
	}

	switch {
	case errors.Is(err, syscall.EROFS):
		return permanent(reasonReadOnly)
	case errors.Is(err, fs.ErrPermission):
		return permanent(reasonPermission)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return transient(reasonNoSpace)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return transient(reasonTimeout)
	case isNetworkError(err):
		return transient(reasonNetwork)
	}
	return transient(reasonUnknown)
}

// httpStatus is the status code of the HTTP response inside err, or 0.
func httpStatus(err error) int {
	var withStatus interface{ HTTPStatusCode() int }
	if errors.As(err, &withStatus) {
		return withStatus.HTTPStatusCode()
	}
	return 0
}

// isCredentialsError recognises failures of the AWS credential chain. The SDK
// has no error type for them, only stable message fragments from the auth
// middleware and the credential cache.
func isCredentialsError(err error) bool {
	msg := err.Error()
	for _, fragment := range []string{
		"get identity:",
		"failed to refresh cached credentials",
		"no EC2 IMDS role found",
		"failed to retrieve credentials",
		"static credentials are empty",
	} {
		if strings.Contains(msg, fragment) {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var timeout interface{ Timeout() bool }
	return errors.As(err, &timeout) && timeout.Timeout()
}

func isNetworkError(err error) bool {
	var netErr net.Error
	var connErr interface{ ConnectionError() bool }
	return errors.As(err, &netErr) ||
		(errors.As(err, &connErr) && connErr.ConnectionError()) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}

// RetryAfter reads the Retry-After header (delay-seconds or an HTTP date,
// relative to now) of the HTTP response inside err. It returns 0 when err
// holds no response, the header is absent or unparseable, or the date has
// passed. Values beyond a day are treated as unparseable.
func RetryAfter(err error, now time.Time) time.Duration {
	var respErr *smithyhttp.ResponseError
	if !errors.As(err, &respErr) || respErr.Response == nil || respErr.Response.Response == nil {
		return 0
	}
	value := strings.TrimSpace(respErr.Response.Header.Get("Retry-After"))
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(value, 10, 64); err == nil {
		if secs <= 0 || secs > int64(24*time.Hour/time.Second) {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		if d := at.Sub(now); d <= 24*time.Hour {
			return d
		}
	}
	return 0
}
