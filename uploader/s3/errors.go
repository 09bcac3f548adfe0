package s3

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nixs3q/nixs3q/uploader"
)

// translate returns err, an error of the AWS SDK, as an
// *uploader.BackendError naming its cause in uploader's neutral terms, with
// the HTTP status and the server's Retry-After. Errors this package does not
// recognise (a failing body, a cancelled context, a file system error) are
// returned unchanged: uploader.Classify reads those itself. The message is
// unchanged either way.
func translate(err error) error {
	if err == nil {
		return nil
	}
	kind := kindOf(err)
	delay := retryAfter(err, time.Now())
	if kind == nil && delay == 0 {
		return err
	}
	return &uploader.BackendError{Kind: kind, Status: httpStatus(err), Delay: delay, Err: err}
}

// kindOf names the cause of err, or nil: first the S3 error code, then the
// HTTP status for answers without a known code, then failures of the
// credential chain, then connections that failed.
func kindOf(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if kind := codeKinds[apiErr.ErrorCode()]; kind != nil {
			return kind
		}
	}
	switch status := httpStatus(err); {
	case status == http.StatusForbidden:
		return uploader.ErrAccessDenied
	case status == http.StatusMovedPermanently:
		return uploader.ErrWrongRegion
	case status == http.StatusNotImplemented:
		return uploader.ErrNotSupported
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return uploader.ErrThrottled
	case status >= 500:
		return uploader.ErrServer
	}
	if isCredentialsError(err) {
		if isConnectionError(err) {
			return uploader.ErrCredentialsUnreachable
		}
		return uploader.ErrNoCredentials
	}
	// Timeouts are left to Classify, which reads them from the standard
	// library's errors and reports them as such.
	if isConnectionError(err) && !isTimeout(err) && !errors.Is(err, context.DeadlineExceeded) {
		return uploader.ErrNetwork
	}
	return nil
}

// codeKinds maps the S3 error codes users meet onto uploader's causes.
var codeKinds = map[string]error{
	"AccessDenied":                       uploader.ErrAccessDenied,
	"AllAccessDisabled":                  uploader.ErrAccessDenied,
	"Forbidden":                          uploader.ErrAccessDenied,
	"NoSuchBucket":                       uploader.ErrNoSuchBucket,
	"InvalidAccessKeyId":                 uploader.ErrUnknownAccessKey,
	"SignatureDoesNotMatch":              uploader.ErrSignatureMismatch,
	"InvalidBucketName":                  uploader.ErrInvalidBucketName,
	"AuthorizationHeaderMalformed":       uploader.ErrWrongRegion,
	"PermanentRedirect":                  uploader.ErrWrongRegion,
	"IllegalLocationConstraintException": uploader.ErrWrongRegion,
	"InvalidStorageClass":                uploader.ErrInvalidStorageClass,
	"EntityTooLarge":                     uploader.ErrTooLarge,
	"NotImplemented":                     uploader.ErrNotSupported,
	"RequestTimeout":                     uploader.ErrTimeout,
	"RequestTimeoutException":            uploader.ErrTimeout,
	"RequestTimeTooSkewed":               uploader.ErrClockSkew,
	"ExpiredToken":                       uploader.ErrCredentialsExpired,
	"TokenRefreshRequired":               uploader.ErrCredentialsExpired,
	"RequestExpired":                     uploader.ErrCredentialsExpired,
	"SlowDown":                           uploader.ErrThrottled,
	"Throttling":                         uploader.ErrThrottled,
	"ThrottlingException":                uploader.ErrThrottled,
	"TooManyRequestsException":           uploader.ErrThrottled,
	"RequestLimitExceeded":               uploader.ErrThrottled,
	"BandwidthLimitExceeded":             uploader.ErrThrottled,
	"RequestThrottled":                   uploader.ErrThrottled,
}

// httpStatus is the status code of the HTTP response inside err, or 0.
func httpStatus(err error) int {
	var withStatus interface{ HTTPStatusCode() int }
	if errors.As(err, &withStatus) {
		return withStatus.HTTPStatusCode()
	}
	return 0
}

// isNoSuchBucket reports an answer saying the bucket does not exist.
func isNoSuchBucket(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket"
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

// isConnectionError reports a request that could not be sent or whose
// answer could not be read: the SDK's send errors and the standard
// library's network errors.
func isConnectionError(err error) bool {
	var connErr interface{ ConnectionError() bool }
	var netErr net.Error
	return (errors.As(err, &connErr) && connErr.ConnectionError()) || errors.As(err, &netErr) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}

func isTimeout(err error) bool {
	var timeout interface{ Timeout() bool }
	return errors.As(err, &timeout) && timeout.Timeout()
}

// retryAfter reads the Retry-After header (delay-seconds or an HTTP date,
// relative to now) of the HTTP response inside err. It returns 0 when err
// holds no response, the header is absent or unparseable, or the date has
// passed. Values beyond a day are treated as unparseable.
func retryAfter(err error, now time.Time) time.Duration {
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
