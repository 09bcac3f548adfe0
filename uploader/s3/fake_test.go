package s3_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/uploader/s3"
)

const testBucket = "nix-cache"

// request is what fakeS3 records of each request it receives.
type request struct {
	at     time.Time
	method string
	path   string
	query  string
	header http.Header
}

// fakeS3 is gofakes3 behind an httptest server, with a hook that can answer
// a request itself (to inject faults) and a log of every request.
type fakeS3 struct {
	srv *httptest.Server

	mu        sync.Mutex
	requests  []request
	intercept func(w http.ResponseWriter, r *http.Request, n int) bool
}

// newFakeS3 starts gofakes3 with testBucket created. intercept, when not
// nil, sees every request with its 1-based number and returns true when it
// has answered it.
func newFakeS3(t *testing.T, intercept func(w http.ResponseWriter, r *http.Request, n int) bool) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(backend).Server()
	f := &fakeS3{intercept: intercept}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, request{at: time.Now(), method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone()})
		n := len(f.requests)
		f.mu.Unlock()
		if f.intercept != nil && f.intercept(w, r, n) {
			return
		}
		faker.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// log returns the requests so far.
func (f *fakeS3) log() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}

// count returns how many recorded requests match.
func (f *fakeS3) count(match func(request) bool) int {
	n := 0
	for _, r := range f.log() {
		if match(r) {
			n++
		}
	}
	return n
}

// setCredentials gives the AWS default chain static test credentials and
// keeps it away from the machine's own configuration and instance metadata.
func setCredentials(t *testing.T) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
	isolateAWS(t)
}

func isolateAWS(t *testing.T) {
	t.Helper()
	missing := t.TempDir() + "/missing"
	t.Setenv("AWS_CONFIG_FILE", missing)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
}

// testConfig is a Config for the fake at endpoint with fast retries.
func testConfig(endpoint string) s3.Config {
	return s3.Config{
		Bucket:      testBucket,
		Endpoint:    endpoint,
		Multipart:   true,
		PartSize:    s3.MinPartSize,
		MaxAttempts: 3,
		MaxBackoff:  10 * time.Millisecond,
	}
}

func newStore(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	store, err := s3.New(context.Background(), cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("s3.New: %v", err)
	}
	return store
}
