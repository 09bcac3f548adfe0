package uploader_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		reason    string
	}{
		{"hash mismatch", fmt.Errorf("upload /nix/store/x: %w", uploader.ErrHashMismatch), true, "nix-store --verify"},
		{"path gone", fmt.Errorf("uploader: dump /nix/store/x: %w: %w", uploader.ErrPathGone, &fs.PathError{Op: "lstat", Path: "/nix/store/x", Err: syscall.ENOENT}), true, "garbage-collected"},
		{"access denied", httpErr(403, "AccessDenied", nil), true, "s3:PutObject"},
		{"403 without code", httpErr(403, "", nil), true, "access denied"},
		{"no such bucket", httpErr(404, "NoSuchBucket", nil), true, "bucket does not exist"},
		{"invalid access key", httpErr(403, "InvalidAccessKeyId", nil), true, "access key ID"},
		{"signature", httpErr(403, "SignatureDoesNotMatch", nil), true, "secret access key"},
		{"bucket name", httpErr(400, "InvalidBucketName", nil), true, "bucket name"},
		{"wrong region", httpErr(400, "AuthorizationHeaderMalformed", nil), true, "region"},
		{"not implemented", httpErr(501, "NotImplemented", nil), true, "does not implement"},
		{"no credentials", errors.New("operation error S3: PutObject, get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role found"), true, "no AWS credentials"},
		{"credentials provider unreachable", fmt.Errorf("get identity: get credentials: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), false, "credentials provider"},
		{"read-only file system", fmt.Errorf("local: put x: %w", &fs.PathError{Op: "open", Path: "/cache/x", Err: syscall.EROFS}), true, "read-only"},
		{"permission denied", fmt.Errorf("local: put x: %w", &fs.PathError{Op: "open", Path: "/cache/x", Err: syscall.EACCES}), true, "permission denied"},
		{"no space", &fs.PathError{Op: "write", Path: "/cache/x", Err: syscall.ENOSPC}, false, "no space"},
		{"clock skew (403)", httpErr(403, "RequestTimeTooSkewed", nil), false, "clock"},
		{"expired token", httpErr(400, "ExpiredToken", nil), false, "expired"},
		{"500", httpErr(500, "InternalError", nil), false, "HTTP 500"},
		{"502 without code", httpErr(502, "", nil), false, "HTTP 502"},
		{"503 slow down", httpErr(503, "SlowDown", nil), false, "throttling"},
		{"429", httpErr(429, "", nil), false, "throttling"},
		{"400 request timeout", httpErr(400, "RequestTimeout", nil), false, "timed out"},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, false, "network"},
		{"connection refused", fmt.Errorf("send: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), false, "network"},
		{"deadline", fmt.Errorf("put: %w", context.DeadlineExceeded), false, "timed out"},
		{"cancelled", fmt.Errorf("put: %w", context.Canceled), false, "cancelled"},
		{"unknown", errors.New("something odd"), false, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := uploader.Classify(tc.err)
			if c.Permanent != tc.permanent || !strings.Contains(c.Reason, tc.reason) {
				t.Errorf("Classify(%v) = %+v, want permanent=%v and a reason mentioning %q", tc.err, c, tc.permanent, tc.reason)
			}
			if c.Reason == "" {
				t.Error("empty reason")
			}
		})
	}
	if c := uploader.Classify(nil); c != (uploader.Class{}) {
		t.Errorf("Classify(nil) = %+v, want the zero Class", c)
	}
}

func TestClassifyRetryAfter(t *testing.T) {
	header := func(v string) http.Header { return http.Header{"Retry-After": []string{v}} }
	for _, tc := range []struct {
		name string
		err  error
		want time.Duration
	}{
		{"seconds", httpErr(503, "SlowDown", header("7")), 7 * time.Second},
		{"wrapped twice", fmt.Errorf("s3: put x: %w", fmt.Errorf("retry: %w", httpErr(503, "SlowDown", header("2")))), 2 * time.Second},
		{"no header", httpErr(503, "SlowDown", nil), 0},
		{"garbage", httpErr(503, "SlowDown", header("soon")), 0},
		{"negative", httpErr(503, "SlowDown", header("-5")), 0},
		{"permanent error ignores it", httpErr(403, "AccessDenied", header("30")), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := uploader.Classify(tc.err).RetryAfter; got != tc.want {
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
		if got := uploader.RetryAfter(err, now); got != tc.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tc.value, got, tc.want)
		}
	}
	if got := uploader.RetryAfter(errors.New("no response"), now); got != 0 {
		t.Errorf("RetryAfter without a response = %v", got)
	}
}
