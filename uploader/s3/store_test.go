package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/cachetest"
	"github.com/nixs3q/nixs3q/uploader/s3"
)

var _ uploader.Cache = (*s3.Store)(nil)

func TestConformanceGoFakeS3(t *testing.T) {
	setCredentials(t)
	for _, multipart := range []bool{true, false} {
		name := map[bool]string{true: "Multipart", false: "SinglePut"}[multipart]
		t.Run(name, func(t *testing.T) {
			cachetest.Run(t, func(t *testing.T) uploader.Cache {
				cfg := testConfig(newFakeS3(t, nil).srv.URL)
				cfg.Multipart = multipart
				return newStore(t, cfg)
			})
		})
	}
}

func isUpload(r request) bool { return r.method == http.MethodPut || r.method == http.MethodPost }

// TestFailingBodySendsNothing checks that a body failing before it fills one
// part never reaches the server: the part is buffered before PutObject.
func TestFailingBodySendsNothing(t *testing.T) {
	setCredentials(t)
	for _, multipart := range []bool{true, false} {
		fake := newFakeS3(t, nil)
		cfg := testConfig(fake.srv.URL)
		cfg.Multipart = multipart
		store := newStore(t, cfg)
		injected := errors.New("injected")
		body := io.MultiReader(bytes.NewReader(make([]byte, 3<<20)), failingReader{injected})
		err := store.Put(context.Background(), "nar/x.nar", body, uploader.PutOptions{Size: -1})
		if !errors.Is(err, injected) {
			t.Fatalf("multipart=%v: Put = %v, want it to wrap the body's error", multipart, err)
		}
		if n := fake.count(isUpload); n != 0 {
			t.Errorf("multipart=%v: %d upload requests sent for a body that failed before one part, want 0", multipart, n)
		}
	}
}

// TestFailingBodyAbortsMultipart checks that a body failing after the first
// part aborts the multipart upload and never completes it.
func TestFailingBodyAbortsMultipart(t *testing.T) {
	setCredentials(t)
	fake := newFakeS3(t, nil)
	store := newStore(t, testConfig(fake.srv.URL))
	injected := errors.New("injected")
	body := io.MultiReader(bytes.NewReader(make([]byte, 12<<20)), failingReader{injected})
	err := store.Put(context.Background(), "nar/x.nar", body, uploader.PutOptions{Size: -1})
	if !errors.Is(err, injected) {
		t.Fatalf("Put = %v, want it to wrap the body's error", err)
	}
	hasQuery := func(method, q string) func(request) bool {
		return func(r request) bool { return r.method == method && strings.Contains(r.query, q) }
	}
	if n := fake.count(hasQuery(http.MethodPost, "uploads")); n != 1 {
		t.Fatalf("%d CreateMultipartUpload requests, want 1 (the test must exercise multipart)", n)
	}
	if n := fake.count(hasQuery(http.MethodDelete, "uploadId=")); n == 0 {
		t.Error("the multipart upload was not aborted")
	}
	if n := fake.count(func(r request) bool { return hasQuery(http.MethodPost, "uploadId=")(r) }); n != 0 {
		t.Errorf("%d CompleteMultipartUpload requests, want 0", n)
	}
}

// TestRequestHeaders checks what objects are stored with: the content type,
// the storage class, and no flexible checksums (S3-compatible servers
// reject them).
func TestRequestHeaders(t *testing.T) {
	setCredentials(t)
	for _, tc := range []struct {
		name string
		size int
	}{{"SinglePart", 1000}, {"Multipart", 7 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeS3(t, nil)
			cfg := testConfig(fake.srv.URL)
			cfg.StorageClass = "STANDARD_IA"
			store := newStore(t, cfg)
			err := store.Put(context.Background(), "nar/x.nar.zst", bytes.NewReader(make([]byte, tc.size)),
				uploader.PutOptions{Size: int64(tc.size), ContentType: "application/x-nix-nar"})
			if err != nil {
				t.Fatal(err)
			}
			var creates int
			for _, r := range fake.log() {
				if !isUpload(r) {
					continue
				}
				for name := range r.header {
					if strings.HasPrefix(strings.ToLower(name), "x-amz-checksum") || strings.EqualFold(name, "x-amz-sdk-checksum-algorithm") {
						t.Errorf("%s %s?%s sent checksum header %s", r.method, r.path, r.query, name)
					}
				}
				if r.method == http.MethodPut && strings.Contains(r.query, "partNumber") {
					continue
				}
				if r.method == http.MethodPost && strings.Contains(r.query, "uploadId=") {
					continue // CompleteMultipartUpload
				}
				if got := r.header.Get("X-Amz-Content-Sha256"); got != "UNSIGNED-PAYLOAD" {
					t.Errorf("%s %s?%s: x-amz-content-sha256 %q, want UNSIGNED-PAYLOAD", r.method, r.path, r.query, got)
				}
				creates++
				if got := r.header.Get("Content-Type"); got != "application/x-nix-nar" {
					t.Errorf("%s %s?%s: Content-Type %q, want application/x-nix-nar", r.method, r.path, r.query, got)
				}
				if got := r.header.Get("X-Amz-Storage-Class"); got != "STANDARD_IA" {
					t.Errorf("%s %s?%s: storage class %q, want STANDARD_IA", r.method, r.path, r.query, got)
				}
				if r.path != "/"+testBucket+"/nar/x.nar.zst" {
					t.Errorf("request path %q, want path-style /%s/nar/x.nar.zst", r.path, testBucket)
				}
			}
			if creates != 1 {
				t.Errorf("%d object-creating requests, want 1", creates)
			}
		})
	}
}

func TestHasTreats403AsMissing(t *testing.T) {
	setCredentials(t)
	for _, tc := range []struct {
		status  int
		want    bool
		wantErr bool
	}{
		{http.StatusForbidden, false, false},
		{http.StatusNotFound, false, false},
		{http.StatusInternalServerError, false, true},
	} {
		fake := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
			if r.Method == http.MethodHead {
				w.WriteHeader(tc.status)
				return true
			}
			return false
		})
		store := newStore(t, testConfig(fake.srv.URL))
		got, err := store.Has(context.Background(), "x.narinfo")
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("Has with HEAD answering %d = %v, %v; want %v, error %v", tc.status, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestString(t *testing.T) {
	setCredentials(t)
	store := newStore(t, s3.Config{Bucket: "b", Endpoint: "127.0.0.1:9000", Scheme: "http", Region: "eu-west-1"})
	if got, want := store.String(), "s3://b?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	store = newStore(t, s3.Config{Bucket: "b"})
	if got, want := store.String(), "s3://b?region=us-east-1"; got != want {
		t.Errorf("String() with no region configured = %q, want %q", got, want)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }
