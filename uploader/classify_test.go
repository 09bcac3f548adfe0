package uploader_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
)

// backendErr is a backend's error translated into the neutral cause kind,
// as uploader/s3 returns them.
func backendErr(kind error, status int) error {
	return fmt.Errorf("s3: put x: %w", &uploader.BackendError{Kind: kind, Status: status, Err: errors.New("operation error S3: PutObject: injected")})
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
		{"access denied", backendErr(uploader.ErrAccessDenied, 403), true, "s3:PutObject"},
		{"no such bucket", backendErr(uploader.ErrNoSuchBucket, 404), true, "bucket does not exist"},
		{"invalid access key", backendErr(uploader.ErrUnknownAccessKey, 403), true, "access key ID"},
		{"signature", backendErr(uploader.ErrSignatureMismatch, 403), true, "secret access key"},
		{"bucket name", backendErr(uploader.ErrInvalidBucketName, 400), true, "bucket name"},
		{"wrong region", backendErr(uploader.ErrWrongRegion, 400), true, "region"},
		{"not implemented", backendErr(uploader.ErrNotSupported, 501), true, "does not implement"},
		{"no credentials", backendErr(uploader.ErrNoCredentials, 0), true, "no AWS credentials"},
		{"credentials provider unreachable", backendErr(uploader.ErrCredentialsUnreachable, 0), false, "credentials provider"},
		{"invalid storage class", backendErr(uploader.ErrInvalidStorageClass, 400), true, "storage class"},
		{"too large", backendErr(uploader.ErrTooLarge, 400), true, "multipart-upload"},
		{"network (translated)", backendErr(uploader.ErrNetwork, 0), false, "network"},
		{"read-only file system", fmt.Errorf("local: put x: %w", &fs.PathError{Op: "open", Path: "/cache/x", Err: syscall.EROFS}), true, "read-only"},
		{"permission denied", fmt.Errorf("local: put x: %w", &fs.PathError{Op: "open", Path: "/cache/x", Err: syscall.EACCES}), true, "permission denied"},
		{"no space", &fs.PathError{Op: "write", Path: "/cache/x", Err: syscall.ENOSPC}, false, "no space"},
		{"clock skew (403)", backendErr(uploader.ErrClockSkew, 403), false, "clock"},
		{"expired token", backendErr(uploader.ErrCredentialsExpired, 400), false, "expired"},
		{"500", backendErr(uploader.ErrServer, 500), false, "HTTP 500"},
		{"502", backendErr(uploader.ErrServer, 502), false, "HTTP 502"},
		{"503 slow down", backendErr(uploader.ErrThrottled, 503), false, "throttling"},
		{"400 request timeout", backendErr(uploader.ErrTimeout, 400), false, "timed out"},
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
	withDelay := func(kind error, status int, d time.Duration) error {
		return fmt.Errorf("s3: put x: %w", &uploader.BackendError{Kind: kind, Status: status, Delay: d, Err: errors.New("injected")})
	}
	for _, tc := range []struct {
		name string
		err  error
		want time.Duration
	}{
		{"delay", withDelay(uploader.ErrThrottled, 503, 7*time.Second), 7 * time.Second},
		{"wrapped twice", fmt.Errorf("retry: %w", withDelay(uploader.ErrThrottled, 503, 2*time.Second)), 2 * time.Second},
		{"no delay", withDelay(uploader.ErrThrottled, 503, 0), 0},
		{"delay without a cause", withDelay(nil, 400, 3*time.Second), 3 * time.Second},
		{"permanent error ignores it", withDelay(uploader.ErrAccessDenied, 403, 30*time.Second), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := uploader.Classify(tc.err).RetryAfter; got != tc.want {
				t.Errorf("RetryAfter = %v, want %v", got, tc.want)
			}
		})
	}
}

// A translated error keeps the backend's message and its chain.
func TestBackendErrorWraps(t *testing.T) {
	inner := &fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}
	err := fmt.Errorf("put: %w", &uploader.BackendError{Kind: uploader.ErrNoSuchBucket, Err: inner})
	if err.Error() != "put: open /x: no such file or directory" {
		t.Errorf("message %q", err)
	}
	var pathErr *fs.PathError
	if !errors.Is(err, uploader.ErrNoSuchBucket) || !errors.As(err, &pathErr) || errors.Is(err, uploader.ErrAccessDenied) {
		t.Errorf("%v does not unwrap to exactly its cause and its backend error", err)
	}
	if errors.Is(&uploader.BackendError{Err: inner}, uploader.ErrServer) {
		t.Error("a BackendError without a cause matches one")
	}
}
