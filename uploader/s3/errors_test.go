package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nixs3q/nixs3q/uploader"
)

// httpErr builds the error chain the AWS SDK returns for an HTTP error
// answer: an operation error around a response error around the API error.
func httpErr(status int, code string, header http.Header) error {
	resp := &http.Response{StatusCode: status, Header: header}
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	var inner error = errors.New("no body")
	if code != "" {
		inner = &smithy.GenericAPIError{Code: code, Message: "test"}
	}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject",
		Err: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: inner}}
}

// TestTranslate maps the SDK's error chains onto uploader's neutral causes,
// and checks that Classify then tells users what it always told them.
func TestTranslate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		kind      error // nil: returned unchanged
		permanent bool
		reason    string
	}{
		{"access denied", httpErr(403, "AccessDenied", nil), uploader.ErrAccessDenied, true, "s3:PutObject"},
		{"all access disabled", httpErr(403, "AllAccessDisabled", nil), uploader.ErrAccessDenied, true, "s3:PutObject"},
		{"403 without code", httpErr(403, "", nil), uploader.ErrAccessDenied, true, "access denied"},
		{"no such bucket", httpErr(404, "NoSuchBucket", nil), uploader.ErrNoSuchBucket, true, "bucket does not exist"},
		{"invalid access key", httpErr(403, "InvalidAccessKeyId", nil), uploader.ErrUnknownAccessKey, true, "access key ID"},
		{"signature", httpErr(403, "SignatureDoesNotMatch", nil), uploader.ErrSignatureMismatch, true, "secret access key"},
		{"bucket name", httpErr(400, "InvalidBucketName", nil), uploader.ErrInvalidBucketName, true, "bucket name"},
		{"wrong region", httpErr(400, "AuthorizationHeaderMalformed", nil), uploader.ErrWrongRegion, true, "region"},
		{"301 without code", httpErr(301, "", nil), uploader.ErrWrongRegion, true, "region"},
		{"storage class", httpErr(400, "InvalidStorageClass", nil), uploader.ErrInvalidStorageClass, true, "storage-class="},
		{"too large", httpErr(400, "EntityTooLarge", nil), uploader.ErrTooLarge, true, "multipart-upload"},
		{"not implemented", httpErr(501, "NotImplemented", nil), uploader.ErrNotSupported, true, "does not implement"},
		{"501 without code", httpErr(501, "", nil), uploader.ErrNotSupported, true, "does not implement"},
		{"no credentials", errors.New("operation error S3: PutObject, get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role found"), uploader.ErrNoCredentials, true, "no AWS credentials"},
		{"credentials provider unreachable", fmt.Errorf("get identity: get credentials: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), uploader.ErrCredentialsUnreachable, false, "credentials provider"},
		{"clock skew (403)", httpErr(403, "RequestTimeTooSkewed", nil), uploader.ErrClockSkew, false, "clock"},
		{"expired token", httpErr(400, "ExpiredToken", nil), uploader.ErrCredentialsExpired, false, "expired"},
		{"500", httpErr(500, "InternalError", nil), uploader.ErrServer, false, "HTTP 500"},
		{"502 without code", httpErr(502, "", nil), uploader.ErrServer, false, "HTTP 502"},
		{"503 slow down", httpErr(503, "SlowDown", nil), uploader.ErrThrottled, false, "throttling"},
		{"503 without code", httpErr(503, "", nil), uploader.ErrThrottled, false, "throttling"},
		{"429", httpErr(429, "", nil), uploader.ErrThrottled, false, "throttling"},
		{"400 request timeout", httpErr(400, "RequestTimeout", nil), uploader.ErrTimeout, false, "timed out"},
		{"send error", &smithyhttp.RequestSendError{Err: errors.New("unexpected EOF")}, uploader.ErrNetwork, false, "network"},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, uploader.ErrNetwork, false, "network"},
		{"send timeout", &smithyhttp.RequestSendError{Err: &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}}, nil, false, "timed out"},
		{"deadline", fmt.Errorf("put: %w", context.DeadlineExceeded), nil, false, "timed out"},
		{"cancelled", fmt.Errorf("put: %w", context.Canceled), nil, false, "cancelled"},
		{"unknown code", httpErr(400, "SomethingNew", nil), nil, false, "unexpected"},
		{"body error", errors.New("read body: injected"), nil, false, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := translate(tc.err)
			if got.Error() != tc.err.Error() {
				t.Errorf("translate changed the message: %q, was %q", got, tc.err)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("translate(%v) lost the SDK's error", tc.err)
			}
			var be *uploader.BackendError
			switch {
			case tc.kind == nil && errors.As(got, &be):
				t.Errorf("translate(%v) = cause %v, want the error unchanged", tc.err, be.Kind)
			case tc.kind != nil && !errors.Is(got, tc.kind):
				t.Errorf("translate(%v) does not match %v", tc.err, tc.kind)
			}
			c := uploader.Classify(fmt.Errorf("s3: put x: %w", got))
			if c.Permanent != tc.permanent || !strings.Contains(c.Reason, tc.reason) {
				t.Errorf("Classify(%v) = %+v, want permanent=%v and a reason mentioning %q", got, c, tc.permanent, tc.reason)
			}
		})
	}
	if translate(nil) != nil {
		t.Error("translate(nil) != nil")
	}
}

func TestTranslateRetryAfter(t *testing.T) {
	header := func(v string) http.Header { return http.Header{"Retry-After": []string{v}} }
	for _, tc := range []struct {
		name string
		err  error
		want time.Duration
	}{
		{"seconds", httpErr(503, "SlowDown", header("7")), 7 * time.Second},
		{"wrapped twice", fmt.Errorf("retry: %w", httpErr(503, "SlowDown", header("2"))), 2 * time.Second},
		{"no header", httpErr(503, "SlowDown", nil), 0},
		{"garbage", httpErr(503, "SlowDown", header("soon")), 0},
		{"negative", httpErr(503, "SlowDown", header("-5")), 0},
		{"permanent error ignores it", httpErr(403, "AccessDenied", header("30")), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := uploader.Classify(fmt.Errorf("s3: put x: %w", translate(tc.err))).RetryAfter; got != tc.want {
				t.Errorf("RetryAfter = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRetryAfterDate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), 0},
		{"120", 2 * time.Minute},
		{"999999999", 0},
		{"", 0},
	} {
		err := httpErr(503, "SlowDown", http.Header{"Retry-After": []string{tc.value}})
		if got := retryAfter(err, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.value, got, tc.want)
		}
	}
	if got := retryAfter(errors.New("no response"), now); got != 0 {
		t.Errorf("retryAfter without a response = %v", got)
	}
}
