package setup

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/s3"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

// memCache is an in-memory uploader.Cache.
type memCache struct {
	mu        sync.Mutex
	objects   map[string][]byte
	putErr    error
	deleteErr error
}

func (c *memCache) Has(_ context.Context, key string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.objects[key]
	return ok, nil
}

func (c *memCache) Put(_ context.Context, key string, body io.Reader, _ uploader.PutOptions) error {
	if c.putErr != nil {
		return c.putErr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objects[key] = data
	return nil
}

func (c *memCache) Get(_ context.Context, key string) (io.ReadCloser, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, ok := c.objects[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (c *memCache) List(_ context.Context, prefix string, fn func(uploader.Object) error) error {
	c.mu.Lock()
	var keys []string
	for k := range c.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	c.mu.Unlock()
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn(uploader.Object{Key: k}); err != nil {
			return err
		}
	}
	return nil
}

func (c *memCache) Delete(_ context.Context, key string) error {
	if c.deleteErr != nil {
		return c.deleteErr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.objects, key)
	return nil
}

func (c *memCache) String() string { return "mem://" }

// fakeAdmin answers like a healthy AWS bucket unless a field says
// otherwise.
type fakeAdmin struct {
	cache       *memCache
	credErr     error
	pingErr     error
	info        s3.ServerInfo
	locErr      error
	location    string
	missingHead int // HTTP status of a HEAD of an absent key
	rules       []s3.LifecycleRule
	versioning  string
	// lifecycleErr fails EnsureAbortIncompleteRule.
	lifecycleErr error
}

func (a *fakeAdmin) Bucket() string    { return "cache" }
func (a *fakeAdmin) Region() string    { return "eu-west-1" }
func (a *fakeAdmin) ObjectURL() string { return "https://cache.s3.eu-west-1.amazonaws.com" }
func (a *fakeAdmin) Credentials(context.Context) (string, string, error) {
	return "EnvConfigCredentials", "AKIAEXAMPLE", a.credErr
}
func (a *fakeAdmin) Ping(context.Context) (s3.ServerInfo, error) { return a.info, a.pingErr }
func (a *fakeAdmin) BucketLocation(context.Context) (string, error) {
	return a.location, a.locErr
}
func (a *fakeAdmin) CreateBucket(context.Context) (bool, error)            { return false, nil }
func (a *fakeAdmin) BucketPolicy(context.Context) (string, error)          { return "", nil }
func (a *fakeAdmin) PutBucketPolicy(context.Context, string) error         { return nil }
func (a *fakeAdmin) Lifecycle(context.Context) ([]s3.LifecycleRule, error) { return a.rules, nil }
func (a *fakeAdmin) Versioning(context.Context) (string, error)            { return a.versioning, nil }
func (a *fakeAdmin) HeadStatus(ctx context.Context, key string) (int, error) {
	if ok, _ := a.cache.Has(ctx, key); ok {
		return http.StatusOK, nil
	}
	return a.missingHead, nil
}
func (a *fakeAdmin) ProbeMultipart(context.Context, string) error { return nil }

func (a *fakeAdmin) EnsureAbortIncompleteRule(_ context.Context, days int) (bool, error) {
	if a.lifecycleErr != nil {
		return false, a.lifecycleErr
	}
	for _, r := range a.rules {
		if r.Enabled && r.AbortIncompleteDays > 0 {
			return false, nil
		}
	}
	a.rules = append(a.rules, s3.LifecycleRule{ID: s3.AbortRuleID, Enabled: true, AbortIncompleteDays: days})
	return true, nil
}

func newFakeAdmin() *fakeAdmin {
	cache := &memCache{objects: map[string][]byte{
		nix.CacheInfoKey: []byte(nix.CacheInfo{StoreDir: "/nix/store", WantMassQuery: true, Priority: 40}.String()),
	}}
	return &fakeAdmin{
		cache:       cache,
		info:        s3.ServerInfo{Date: time.Now(), Server: "AmazonS3", Status: http.StatusOK, TLS: true},
		location:    "eu-west-1",
		missingHead: http.StatusNotFound,
		rules:       []s3.LifecycleRule{{ID: "abort", Enabled: true, AbortIncompleteDays: 7}},
	}
}

func fakeDoctor(t *testing.T, a *fakeAdmin) Report {
	t.Helper()
	open := func(context.Context, storeurl.Spec, int, *zap.Logger) (uploader.Cache, bucketAdmin, error) {
		return a.cache, a, nil
	}
	r, err := runDoctor(context.Background(), DoctorConfig{Store: "s3://cache?region=eu-west-1"}, zaptest.NewLogger(t), open)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.WriteText(&out)
	t.Logf("doctor:\n%s", out.String())
	return r
}

// backendError is an error as the s3 backend returns it.
func backendError(kind error, status int) error {
	return fmt.Errorf("s3: operation: %w", &uploader.BackendError{Kind: kind, Status: status, Err: errors.New("api error")})
}

// TestDoctorS3Fake covers the answers MinIO never gives (AWS's 403 for
// misses, missing lifecycle rules, versioning, skewed clocks, TLS
// failures) with a fake bucket.
func TestDoctorS3Fake(t *testing.T) {
	healthy := fakeDoctor(t, newFakeAdmin())
	if healthy.ExitCode() != 0 {
		t.Fatalf("healthy fake bucket: exit %d", healthy.ExitCode())
	}
	tests := []struct {
		name   string
		breakf func(a *fakeAdmin)
		check  string
		want   Status
		text   string
	}{
		{"miss is 403", func(a *fakeAdmin) { a.missingHead = http.StatusForbidden }, "head-missing", StatusWarning, "s3:ListBucket"},
		{"no abort rule on AWS", func(a *fakeAdmin) { a.rules = nil }, "lifecycle-multipart", StatusWarning, "incomplete multipart"},
		{"expiry by date", func(a *fakeAdmin) {
			a.rules = append(a.rules, s3.LifecycleRule{ID: "purge", Enabled: true, ExpirationDate: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)})
		}, "lifecycle-expiry", StatusWarning, "purge expires objects on 2027-01-01"},
		{"versioning without noncurrent expiry", func(a *fakeAdmin) { a.versioning = "Enabled" }, "versioning", StatusWarning, "noncurrent"},
		{"clock 20 minutes off", func(a *fakeAdmin) { a.info.Date = time.Now().Add(20 * time.Minute) }, "clock", StatusFailure, "15 minutes"},
		{"clock 3 minutes off", func(a *fakeAdmin) { a.info.Date = time.Now().Add(-3 * time.Minute) }, "clock", StatusWarning, "3m"},
		{"no credentials", func(a *fakeAdmin) { a.credErr = errors.New("failed to refresh cached credentials") }, "credentials", StatusFailure, "no credentials"},
		{"unreachable", func(a *fakeAdmin) {
			a.pingErr = backendError(uploader.ErrNetwork, 0)
		}, "endpoint", StatusFailure, "no answer"},
		{"TLS", func(a *fakeAdmin) {
			a.pingErr = &tls.CertificateVerificationError{Err: errors.New("unknown authority")}
		}, "endpoint", StatusFailure, "TLS"},
		{"wrong region", func(a *fakeAdmin) { a.location = "us-west-2" }, "region", StatusFailure, "us-west-2"},
		{"delete denied", func(a *fakeAdmin) { a.cache.deleteErr = backendError(uploader.ErrAccessDenied, http.StatusForbidden) }, "delete", StatusWarning, "left behind"},
		{"location denied", func(a *fakeAdmin) { a.locErr = backendError(uploader.ErrAccessDenied, http.StatusForbidden) }, "region", StatusWarning, "GetBucketLocation"},
		{"put denied", func(a *fakeAdmin) { a.cache.putErr = backendError(uploader.ErrAccessDenied, http.StatusForbidden) }, "put", StatusFailure, "PutObject is denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newFakeAdmin()
			tt.breakf(a)
			r := fakeDoctor(t, a)
			c, ok := r.Get(tt.check)
			if !ok || c.Status != tt.want || !strings.Contains(c.Message+" "+c.Fix, tt.text) || c.Fix == "" {
				t.Fatalf("check %s = %+v (present %v), want %s naming %q with a fix", tt.check, c, ok, tt.want, tt.text)
			}
		})
	}
	// MinIO cleans up abandoned uploads itself.
	a := newFakeAdmin()
	a.rules, a.info.Server = nil, "MinIO"
	if c, _ := fakeDoctor(t, a).Get("lifecycle-multipart"); c.Status != StatusOK {
		t.Errorf("MinIO without an abort rule: %+v", c)
	}
	// Versioning with a rule expiring noncurrent versions is fine.
	a = newFakeAdmin()
	a.versioning = "Enabled"
	a.rules = append(a.rules, s3.LifecycleRule{ID: "old-versions", Enabled: true, NoncurrentDays: 30})
	if c, _ := fakeDoctor(t, a).Get("versioning"); c.Status != StatusOK {
		t.Errorf("versioning with noncurrent expiry: %+v", c)
	}
	// Nothing is left behind when delete works.
	a = newFakeAdmin()
	fakeDoctor(t, a)
	for k := range a.cache.objects {
		if strings.HasPrefix(k, ProbePrefix) {
			t.Errorf("probe left: %s", k)
		}
	}
}

// TestInitLifecycle: on servers other than MinIO, init adds the rule that
// doctor looks for, once, and a refusal is a note, not a failure.
func TestInitLifecycle(t *testing.T) {
	ctx := context.Background()
	a := newFakeAdmin()
	a.rules = nil
	res := &InitResult{}
	if err := initLifecycle(ctx, a, a.info, res); err != nil || !res.Changed() {
		t.Fatalf("first run: %v, %+v", err, res.Steps)
	}
	if c, _ := fakeDoctor(t, a).Get("lifecycle-multipart"); c.Status != StatusOK {
		t.Errorf("doctor after init: %+v", c)
	}
	res = &InitResult{}
	if err := initLifecycle(ctx, a, a.info, res); err != nil || res.Changed() || len(a.rules) != 1 {
		t.Fatalf("second run: %v, %+v, %d rules", err, res.Steps, len(a.rules))
	}
	a = newFakeAdmin()
	a.rules, a.lifecycleErr = nil, backendError(uploader.ErrAccessDenied, http.StatusForbidden)
	res = &InitResult{}
	if err := initLifecycle(ctx, a, a.info, res); err != nil || res.Changed() || !strings.Contains(res.Steps[0].What, "PutLifecycleConfiguration") {
		t.Fatalf("denied: %v, %+v", err, res.Steps)
	}
	a = newFakeAdmin()
	a.rules, a.info.Server = nil, "MinIO"
	res = &InitResult{}
	if err := initLifecycle(ctx, a, a.info, res); err != nil || len(res.Steps) != 0 || len(a.rules) != 0 {
		t.Fatalf("MinIO: %v, %+v", err, res.Steps)
	}
}

// TestDoctorTLSFailure: an HTTPS endpoint whose certificate this machine
// does not trust is named as a TLS failure, through the real S3 client.
func TestDoctorTLSFailure(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	useCredentials(t, []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1"})
	r := doctorReport(t, DoctorConfig{Store: "s3://cache?endpoint=" + srv.URL + "&region=us-east-1", OpTimeout: 10 * time.Second})
	c, ok := r.Get("endpoint")
	if !ok || c.Status != StatusFailure || !strings.Contains(c.Message, "TLS") || c.Fix == "" {
		t.Fatalf("endpoint check against an untrusted certificate: %+v", c)
	}
	if r.ExitCode() != 2 {
		t.Errorf("exit code %d, want 2", r.ExitCode())
	}
}
