package s3_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/s3"
)

// TestAdminMinIO runs every Admin operation against a real MinIO.
func TestAdminMinIO(t *testing.T) {
	ctx := context.Background()
	m := startMinIO(t)
	store := newStore(t, minioConfig(m, "admin"))
	a := store.Admin()

	if a.Bucket() != "admin" || a.Region() != "us-east-1" || a.ObjectURL() != m.Endpoint+"/admin" {
		t.Errorf("bucket %q, region %q, object URL %q", a.Bucket(), a.Region(), a.ObjectURL())
	}
	source, id, err := a.Credentials(ctx)
	if err != nil || id != m.AccessKey || !strings.Contains(source, "Env") {
		t.Errorf("Credentials = %q, %q, %v; want the environment's key", source, id, err)
	}

	info, err := a.Ping(ctx)
	if err != nil || info.Status != http.StatusNotFound || info.Server != "MinIO" || info.TLS {
		t.Fatalf("Ping of a missing bucket = %+v, %v", info, err)
	}
	if d := time.Since(info.Date); d > time.Minute || d < -time.Minute {
		t.Errorf("server Date %v is %v off", info.Date, d)
	}
	if _, err := a.BucketLocation(ctx); !errors.Is(err, uploader.ErrNoSuchBucket) {
		t.Errorf("BucketLocation of a missing bucket: %v, want uploader.ErrNoSuchBucket", err)
	}
	for i, want := range []bool{true, false} {
		created, err := a.CreateBucket(ctx)
		if err != nil || created != want {
			t.Fatalf("CreateBucket #%d = %v, %v; want %v", i+1, created, err, want)
		}
	}
	if loc, err := a.BucketLocation(ctx); err != nil || loc != "us-east-1" {
		t.Errorf("BucketLocation = %q, %v", loc, err)
	}
	if info, err := a.Ping(ctx); err != nil || info.Status != http.StatusOK {
		t.Errorf("Ping of the bucket = %+v, %v", info, err)
	}

	if p, err := a.BucketPolicy(ctx); err != nil || p != "" {
		t.Errorf("BucketPolicy of a new bucket = %q, %v", p, err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::admin/*"]}]}`
	if err := a.PutBucketPolicy(ctx, policy); err != nil {
		t.Fatal(err)
	}
	if p, err := a.BucketPolicy(ctx); err != nil || !strings.Contains(p, "s3:GetObject") {
		t.Errorf("BucketPolicy = %q, %v", p, err)
	}
	if err := a.PutBucketPolicy(ctx, "{"); err == nil {
		t.Error("PutBucketPolicy accepted a malformed policy")
	}

	if rules, err := a.Lifecycle(ctx); err != nil || rules != nil {
		t.Errorf("Lifecycle of a new bucket = %+v, %v", rules, err)
	}
	_, err = m.Client().PutBucketLifecycleConfiguration(ctx, &awss3.PutBucketLifecycleConfigurationInput{
		Bucket: aws.String("admin"),
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{{
			ID: aws.String("logs"), Status: types.ExpirationStatusEnabled,
			Filter:     &types.LifecycleRuleFilter{Prefix: aws.String("log/")},
			Expiration: &types.LifecycleExpiration{Days: aws.Int32(30)},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := a.Lifecycle(ctx)
	if err != nil || len(rules) != 1 || rules[0] != (s3.LifecycleRule{ID: "logs", Enabled: true, Prefix: "log/", ExpirationDays: 30}) {
		t.Errorf("Lifecycle = %+v, %v", rules, err)
	}
	if v, err := a.Versioning(ctx); err != nil || v != "" {
		t.Errorf("Versioning of a new bucket = %q, %v", v, err)
	}

	if err := store.Put(ctx, "probe/x", strings.NewReader("x"), uploader.PutOptions{Size: 1}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{"probe/x": http.StatusOK, "probe/absent": http.StatusNotFound} {
		if status, err := a.HeadStatus(ctx, key); err != nil || status != want {
			t.Errorf("HeadStatus(%s) = %d, %v; want %d", key, status, err, want)
		}
	}
	if err := a.ProbeMultipart(ctx, "probe/multipart"); err != nil {
		t.Errorf("ProbeMultipart: %v", err)
	}
	uploads, err := m.Client().ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String("admin")})
	if err != nil || len(uploads.Uploads) != 0 {
		t.Errorf("multipart uploads left: %d, %v", len(uploads.Uploads), err)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	bad := newStore(t, minioConfig(m, "admin")).Admin()
	if _, err := bad.BucketLocation(ctx); !errors.Is(err, uploader.ErrSignatureMismatch) {
		t.Errorf("wrong secret: %v, want uploader.ErrSignatureMismatch", err)
	}
	if err := bad.ProbeMultipart(ctx, "probe/y"); !errors.Is(err, uploader.ErrSignatureMismatch) {
		t.Errorf("ProbeMultipart with a wrong secret: %v, want uploader.ErrSignatureMismatch", err)
	}
}

// TestAdminUnreachable: Ping reports a dead endpoint as a network error.
func TestAdminUnreachable(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	cfg := testConfig("http://127.0.0.1:1")
	cfg.Bucket = "b"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := newStore(t, cfg).Admin().Ping(ctx)
	if !errors.Is(err, uploader.ErrNetwork) {
		t.Fatalf("Ping of a closed port: %v, want uploader.ErrNetwork", err)
	}
}
