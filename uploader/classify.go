package uploader

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"
	"time"

	"github.com/nixs3q/nixs3q/nix"
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
	reasonFileType:     "file_type",
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
	reasonVanished:     "vanished",
	reasonUnknown:      "other",
	reasonRealisation:  "realisation_pending",
}

// Reasons shown to users, one per cause.
const (
	reasonHashMismatch = "the store path's contents do not match the NarHash in the Nix database: repair it with nix-store --verify --check-contents --repair"
	reasonStoreDir     = "the cache's nix-cache-info names another store directory: use another bucket or directory for this store"
	reasonFileType     = "the store path contains a FIFO, socket or device, which no NAR can hold: fix the derivation that produced it"
	reasonRealisation  = "a realisation this build depends on is not in the cache yet (its own build publishes it); it is retried"
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
	reasonVanished     = "a path it refers to vanished from the cache during the upload (garbage collection); it is retried and uploaded again"
	reasonUnknown      = "unexpected error; it is retried"
)

// Classify decides whether a failed upload attempt is permanent or transient.
// It is the only place nixs3q makes that decision; it looks through wrapped
// errors and never blocks. It reads only neutral errors: the causes of
// errors.go that backends translate their own errors into, this package's
// sentinels, and the standard library's context, file system and network
// errors. The delay of a transient failure comes from an error in the chain
// with a RetryAfter() time.Duration method (BackendError has one). Unknown
// errors are transient, so a surprise costs a retry rather than a lost path. A nil error gives the zero Class.
func Classify(err error) Class {
	if err == nil {
		return Class{}
	}
	c := classify(err)
	if c.Code = reasonCodes[c.Reason]; c.Code == "" {
		c.Code = "other"
	}
	var delay interface{ RetryAfter() time.Duration }
	if !c.Permanent && errors.As(err, &delay) {
		c.RetryAfter = max(delay.RetryAfter(), 0)
	}
	return c
}

// kindClasses says, for each neutral cause a backend reports, whether it is
// permanent and what to tell the user.
var kindClasses = []struct {
	kind      error
	permanent bool
	reason    string
}{
	{ErrAccessDenied, true, reasonAccessDenied},
	{ErrNoSuchBucket, true, reasonNoBucket},
	{ErrUnknownAccessKey, true, reasonAccessKey},
	{ErrSignatureMismatch, true, reasonSignature},
	{ErrInvalidBucketName, true, reasonBucketName},
	{ErrWrongRegion, true, reasonRegion},
	{ErrInvalidStorageClass, true, reasonStorageClass},
	{ErrTooLarge, true, reasonTooLarge},
	{ErrNotSupported, true, reasonNotSupported},
	{ErrNoCredentials, true, reasonNoCreds},
	{ErrCredentialsUnreachable, false, reasonCredsNet},
	{ErrCredentialsExpired, false, reasonExpired},
	{ErrClockSkew, false, reasonClockSkew},
	{ErrThrottled, false, reasonThrottled},
	{ErrTimeout, false, reasonTimeout},
	{ErrNetwork, false, reasonNetwork},
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
	if errors.Is(err, nix.ErrUnsupportedFileType) {
		return permanent(reasonFileType)
	}
	if errors.Is(err, ErrVanished) {
		return transient(reasonVanished)
	}
	if errors.Is(err, context.Canceled) {
		return transient(reasonCanceled)
	}
	if errors.Is(err, ErrRealisationPending) {
		return transient(reasonRealisation)
	}

	for _, k := range kindClasses {
		if errors.Is(err, k.kind) {
			return Class{Permanent: k.permanent, Reason: k.reason}
		}
	}
	if errors.Is(err, ErrServer) {
		var be *BackendError
		if errors.As(err, &be) && be.Status != 0 {
			return transient(fmt.Sprintf("the server failed (HTTP %d); it is retried", be.Status))
		}
		return transient("the server failed; it is retried")
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

func isTimeout(err error) bool {
	var timeout interface{ Timeout() bool }
	return errors.As(err, &timeout) && timeout.Timeout()
}

func isNetworkError(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}
