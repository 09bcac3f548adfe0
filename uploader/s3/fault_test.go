package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/cachetest"
)

// s3Error answers like S3 does with an XML error document.
func s3Error(w http.ResponseWriter, status int, code string, header map[string]string) {
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message><RequestId>test</RequestId></Error>`, code)
}

func isPut(r *http.Request) bool { return r.Method == http.MethodPut || r.Method == http.MethodPost }

// putAndCheck uploads size pseudo-random bytes to key and returns Put's
// error; on success it also checks that the object reads back intact.
func putAndCheck(t *testing.T, store uploader.Cache, key string, size int) error {
	t.Helper()
	body := bytes.Repeat([]byte("nixs3q fault injection "), size/23+1)[:size]
	if err := store.Put(context.Background(), key, bytes.NewReader(body), uploader.PutOptions{Size: int64(size)}); err != nil {
		return err
	}
	r, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get after successful Put: %v", err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("object read back wrong: %d bytes, error %v; want %d bytes", len(got), err, size)
	}
	return nil
}

func TestRetriesServerErrors(t *testing.T) {
	setCredentials(t)
	for _, tc := range []struct {
		name     string
		size     int
		status   int
		code     string
		failures int
	}{
		{"500 single part", 1000, http.StatusInternalServerError, "InternalError", 2},
		{"500 multipart", 11 << 20, http.StatusInternalServerError, "InternalError", 2},
		{"502", 1000, http.StatusBadGateway, "BadGateway", 2},
		{"429", 1000, http.StatusTooManyRequests, "TooManyRequests", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failed atomic.Int32
			fake := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
				if isPut(r) && failed.Add(1) <= int32(tc.failures) {
					s3Error(w, tc.status, tc.code, nil)
					return true
				}
				return false
			})
			cfg := testConfig(fake.srv.URL)
			cfg.MaxAttempts = tc.failures + 1
			if err := putAndCheck(t, newStore(t, cfg), "nar/retried.nar", tc.size); err != nil {
				t.Fatalf("Put failed despite %d attempts for %d failures: %v", cfg.MaxAttempts, tc.failures, err)
			}
			if n := fake.count(func(r request) bool { return r.method == http.MethodPut || r.method == http.MethodPost }); n <= tc.failures {
				t.Fatalf("%d upload requests, want more than the %d injected failures", n, tc.failures)
			}
		})
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	setCredentials(t)
	fake := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		if isPut(r) {
			s3Error(w, http.StatusInternalServerError, "InternalError", nil)
			return true
		}
		return false
	})
	cfg := testConfig(fake.srv.URL)
	err := putAndCheck(t, newStore(t, cfg), "nar/x.nar", 1000)
	if err == nil {
		t.Fatal("Put succeeded against a server that always fails")
	}
	if n := fake.count(func(r request) bool { return r.method == http.MethodPut }); n != cfg.MaxAttempts {
		t.Errorf("%d PUT attempts, want MaxAttempts = %d", n, cfg.MaxAttempts)
	}
	if !errors.Is(err, uploader.ErrServer) {
		t.Errorf("Put = %v, want an error matching %v", err, uploader.ErrServer)
	}
	if c := uploader.Classify(err); c.Permanent || !strings.Contains(c.Reason, "HTTP 500") {
		t.Errorf("Classify(%v) = %+v, want transient HTTP 500", err, c)
	}
	if has, _ := newStore(t, cfg).Has(context.Background(), "nar/x.nar"); has {
		t.Error("object exists after a failed Put")
	}
}

// TestConnectionReset closes the connection with a TCP reset in the middle
// of an upload's body; the SDK retries and the object arrives intact.
func TestConnectionReset(t *testing.T) {
	setCredentials(t)
	for _, tc := range []struct {
		name string
		size int
	}{{"single part", 2 << 20}, {"multipart", 11 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			var reset atomic.Bool
			fake := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
				if r.Method != http.MethodPut || reset.Swap(true) {
					return false
				}
				if _, err := io.CopyN(io.Discard, r.Body, 256<<10); err != nil {
					t.Errorf("reading the start of the body: %v", err)
				}
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return true
				}
				if tcp, ok := conn.(*net.TCPConn); ok {
					tcp.SetLinger(0) // close with RST, not FIN
				}
				conn.Close()
				return true
			})
			err := putAndCheck(t, newStore(t, testConfig(fake.srv.URL)), "nar/reset.nar", tc.size)
			if !reset.Load() {
				t.Fatal("no connection was reset")
			}
			if err != nil {
				if c := uploader.Classify(err); c.Permanent {
					t.Fatalf("Put after a connection reset = %v, classified permanent (%+v)", err, c)
				}
				t.Fatalf("Put was not retried after a connection reset: %v", err)
			}
		})
	}
}

// TestPermanentErrors checks that errors only a person can fix are not
// retried by the SDK and are classified permanent with a clear reason.
func TestPermanentErrors(t *testing.T) {
	setCredentials(t)
	for _, tc := range []struct {
		status int
		code   string
		kind   error
		reason string
	}{
		{http.StatusForbidden, "AccessDenied", uploader.ErrAccessDenied, "s3:PutObject"},
		{http.StatusForbidden, "InvalidAccessKeyId", uploader.ErrUnknownAccessKey, "access key ID"},
		{http.StatusForbidden, "SignatureDoesNotMatch", uploader.ErrSignatureMismatch, "secret access key"},
		{http.StatusNotFound, "NoSuchBucket", uploader.ErrNoSuchBucket, "bucket does not exist"},
		{http.StatusBadRequest, "InvalidBucketName", uploader.ErrInvalidBucketName, "bucket name"},
		{http.StatusBadRequest, "InvalidStorageClass", uploader.ErrInvalidStorageClass, "storage class"},
		{http.StatusNotImplemented, "NotImplemented", uploader.ErrNotSupported, "does not implement"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			fake := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
				if isPut(r) {
					s3Error(w, tc.status, tc.code, nil)
					return true
				}
				return false
			})
			err := putAndCheck(t, newStore(t, testConfig(fake.srv.URL)), "x.narinfo", 100)
			if err == nil {
				t.Fatal("Put succeeded")
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("Put = %v, want an error matching %v", err, tc.kind)
			}
			c := uploader.Classify(err)
			if !c.Permanent || !strings.Contains(c.Reason, tc.reason) {
				t.Errorf("Classify(%v) = %+v, want permanent with a reason mentioning %q", err, c, tc.reason)
			}
			if n := fake.count(func(r request) bool { return r.method == http.MethodPut }); n != 1 {
				t.Errorf("%d PUT attempts for a permanent error, want 1", n)
			}
		})
	}
}

// TestMissingBucketReal uses gofakes3's own answer for a bucket that does
// not exist, rather than an injected one.
func TestMissingBucketReal(t *testing.T) {
	setCredentials(t)
	cfg := testConfig(newFakeS3(t, nil).srv.URL)
	cfg.Bucket = "no-such-bucket"
	store := newStore(t, cfg)
	err := store.Put(context.Background(), "x.narinfo", strings.NewReader("x"), uploader.PutOptions{Size: 1})
	if !errors.Is(err, uploader.ErrNoSuchBucket) {
		t.Errorf("Put to a missing bucket = %v, want an error matching %v", err, uploader.ErrNoSuchBucket)
	}
	if c := uploader.Classify(err); err == nil || !c.Permanent || !strings.Contains(c.Reason, "bucket does not exist") {
		t.Errorf("Put to a missing bucket = %v, classified %+v; want permanent missing bucket", err, c)
	}
}

// TestNoCredentials runs the real AWS credential chain with nothing to find.
func TestNoCredentials(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	fake := newFakeS3(t, nil)
	store := newStore(t, testConfig(fake.srv.URL))
	err := store.Put(context.Background(), "x.narinfo", strings.NewReader("x"), uploader.PutOptions{Size: 1})
	if err == nil {
		t.Fatal("Put succeeded without credentials")
	}
	t.Logf("Put without credentials: %v", err)
	if !errors.Is(err, uploader.ErrNoCredentials) {
		t.Errorf("Put = %v, want an error matching %v", err, uploader.ErrNoCredentials)
	}
	if c := uploader.Classify(err); !c.Permanent || !strings.Contains(c.Reason, "no AWS credentials") {
		t.Errorf("Classify(%v) = %+v, want permanent no credentials", err, c)
	}
	if n := len(fake.log()); n != 0 {
		t.Errorf("%d requests reached the server without credentials", n)
	}
}

// TestCancelAbortsMultipart cancels the context while parts are uploading:
// the upload is aborted on a detached context and nothing is committed.
func TestCancelAbortsMultipart(t *testing.T) {
	setCredentials(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var parts atomic.Int32
	fake := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.RawQuery, "partNumber") {
			if parts.Add(1) == 2 {
				cancel()
				// Hold the part until the client gives up on it.
				io.Copy(io.Discard, r.Body)
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
				return true
			}
		}
		return false
	})
	store := newStore(t, testConfig(fake.srv.URL))
	body := io.LimitReader(cachetestRand{}, cachetest.LargeSize)
	err := store.Put(ctx, "nar/cancelled.nar", body, uploader.PutOptions{Size: -1})
	if err == nil {
		t.Fatal("Put succeeded after its context was cancelled")
	}
	if n := fake.count(func(r request) bool { return r.method == http.MethodDelete && strings.Contains(r.query, "uploadId=") }); n == 0 {
		t.Error("the multipart upload was not aborted after cancellation")
	}
	if has, err := store.Has(context.Background(), "nar/cancelled.nar"); has || err != nil {
		t.Errorf("Has after cancelled Put = %v, %v; want false, nil", has, err)
	}
}

// cachetestRand is a cheap endless non-seekable body.
type cachetestRand struct{}

func (cachetestRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i * 7)
	}
	return len(p), nil
}
