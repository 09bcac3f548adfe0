package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/internal/testenv/minioadmin"
)

// useCredentials points the AWS default chain at these credentials only.
func useCredentials(t *testing.T, env []string) {
	t.Helper()
	missing := filepath.Join(t.TempDir(), "missing")
	t.Setenv("AWS_CONFIG_FILE", missing)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, name := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"} {
		t.Setenv(name, "")
	}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}
}

// minioSetup is a MinIO server with a bucket made by Init with
// --public-read, and a writer user holding the printed policy.
type minioSetup struct {
	m       *testenv.MinIO
	store   string
	keyFile string
	pub     string
	public  string
	writer  minioadmin.User
}

func newMinIOSetup(t *testing.T, bucket string) *minioSetup {
	t.Helper()
	m := testenv.StartMinIO(t)
	useCredentials(t, m.Env())
	s := &minioSetup{
		m:       m,
		store:   "s3://" + bucket + "?endpoint=" + m.Endpoint + "&region=us-east-1",
		keyFile: filepath.Join(t.TempDir(), "cache.sec"),
		public:  m.Endpoint + "/" + bucket,
	}
	res, err := Init(context.Background(), InitConfig{Store: s.store, SecretKeyFile: s.keyFile, PublicRead: true}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	s.pub = res.PublicKey.String()
	s.writer = minioadmin.AddUser(t, m, "writer", WriterPolicy(bucket, false))
	return s
}

func (s *minioSetup) doctorConfig() DoctorConfig {
	return DoctorConfig{Store: s.store, SecretKeyFile: s.keyFile, PublicKey: s.pub, PublicURL: s.public, OpTimeout: 10 * time.Second}
}

func TestInitMinIO(t *testing.T) {
	ctx := context.Background()
	m := testenv.StartMinIO(t)
	useCredentials(t, m.Env())
	store := "s3://fresh?endpoint=" + m.Endpoint + "&region=us-east-1"
	cfg := InitConfig{Store: store, SecretKeyFile: filepath.Join(t.TempDir(), "k.sec"), PublicRead: true}
	res, err := Init(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, s := range res.Steps {
		if s.Changed {
			changed = append(changed, s.What)
		}
	}
	if len(changed) != 4 { // key, bucket, nix-cache-info, policy
		t.Fatalf("first init changed %d things, want 4: %q", len(changed), changed)
	}
	if !res.PublicRead || res.ClientURL != m.Endpoint+"/fresh" {
		t.Errorf("public %v, client URL %q", res.PublicRead, res.ClientURL)
	}
	resp, err := http.Get(m.Endpoint + "/fresh/nix-cache-info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("anonymous GET of nix-cache-info after init: %s", resp.Status)
	}
	policy, err := m.Client().GetBucketPolicy(ctx, &awss3.GetBucketPolicyInput{Bucket: aws.String("fresh")})
	if err != nil {
		t.Fatal(err)
	}
	again, err := Init(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed() {
		t.Fatalf("second init changed something: %+v", again.Steps)
	}
	policyAfter, err := m.Client().GetBucketPolicy(ctx, &awss3.GetBucketPolicyInput{Bucket: aws.String("fresh")})
	if err != nil || normalizePolicy(t, aws.ToString(policyAfter.Policy)) != normalizePolicy(t, aws.ToString(policy.Policy)) {
		t.Fatalf("policy changed on the second run: %v\n%s\n%s", err, aws.ToString(policy.Policy), aws.ToString(policyAfter.Policy))
	}

	// A private bucket: no policy, and clients are told to use s3://.
	cfg.Store = "s3://private?endpoint=" + m.Endpoint + "&region=us-east-1"
	cfg.PublicRead = false
	res, err = Init(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.PublicRead || !strings.HasPrefix(res.ClientURL, "s3://private?") {
		t.Errorf("private bucket: public %v, client URL %q", res.PublicRead, res.ClientURL)
	}
}

// TestDoctorMinIOHealthy: with the printed writer policy, nothing to warn
// about, and no object left behind.
func TestDoctorMinIOHealthy(t *testing.T) {
	s := newMinIOSetup(t, "cache")
	useCredentials(t, s.writer.Env(s.m.Region))
	r := doctorReport(t, s.doctorConfig())
	for _, c := range r.Checks {
		if c.Status != StatusOK && c.Status != StatusSkipped {
			t.Errorf("check %s is %s: %s", c.Name, c.Status, c.Message)
		}
	}
	for _, name := range []string{"credentials", "endpoint", "clock", "auth", "bucket", "region", "put", "get", "head",
		"head-missing", "list", "multipart", "delete", "nix-cache-info", "lifecycle-expiry", "lifecycle-multipart",
		"versioning", "key-file", "key-permissions", "public-key", "public-read", "public-narinfo"} {
		if c, ok := r.Get(name); !ok || c.Status != StatusOK {
			t.Errorf("check %s: %+v (present %v), want ok", name, c, ok)
		}
	}
	if c, _ := r.Get("credentials"); !strings.Contains(c.Message, "writer") || strings.Contains(c.Message, s.writer.SecretKey) {
		t.Errorf("credentials: %q: want the access key ID, never the secret", c.Message)
	}
	out, err := s.m.Client().ListObjectsV2(context.Background(), &awss3.ListObjectsV2Input{Bucket: aws.String("cache")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if aws.ToString(o.Key) != "nix-cache-info" {
			t.Errorf("object left in the bucket: %s", aws.ToString(o.Key))
		}
	}
	uploads, err := s.m.Client().ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String("cache")})
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) != 0 {
		t.Errorf("%d multipart uploads left", len(uploads.Uploads))
	}
}

// TestDoctorMinIOBroken breaks the set-up in each way users do and requires
// doctor to name the problem.
func TestDoctorMinIOBroken(t *testing.T) {
	s := newMinIOSetup(t, "cache")
	root := s.m.Env()
	without := func(action string) string {
		return strings.ReplaceAll(strings.ReplaceAll(WriterPolicy("cache", false), `"`+action+`",`, ""), `,
        "`+action+`"`, "")
	}
	noList := minioadmin.AddUser(t, s.m, "nolist", without("s3:ListBucket"))
	noPut := minioadmin.AddUser(t, s.m, "noput", without("s3:PutObject"))
	if strings.Contains(without("s3:ListBucket"), `"s3:ListBucket"`) || strings.Contains(without("s3:PutObject"), `"s3:PutObject"`) {
		t.Fatal("the test's policies still grant what they should lack")
	}
	tests := []struct {
		name   string
		env    []string
		breakf func(t *testing.T, cfg *DoctorConfig)
		check  string
		want   Status
		text   string
	}{
		// MinIO answers 404 for an absent key also without s3:ListBucket
		// (AWS answers 403, see TestDoctorHeadMissing403): the list probe
		// names the missing permission.
		{"no ListBucket", noList.Env("us-east-1"), nil, "list", StatusWarning, "s3:ListBucket"},
		{"no PutObject", noPut.Env("us-east-1"), nil, "put", StatusFailure, "PutObject is denied"},
		{"no PutObject, multipart", noPut.Env("us-east-1"), nil, "multipart", StatusFailure, "denied"},
		{"unknown access key", minioadmin.User{AccessKey: "nobody", SecretKey: "nothing-at-all"}.Env("us-east-1"), nil, "auth", StatusFailure, "access key ID"},
		{"wrong secret", minioadmin.User{AccessKey: s.writer.AccessKey, SecretKey: "wrong-secret-key"}.Env("us-east-1"), nil, "auth", StatusFailure, "secret access key"},
		{"wrong bucket", s.writer.Env("us-east-1"), func(t *testing.T, cfg *DoctorConfig) {
			cfg.Store = strings.Replace(cfg.Store, "s3://cache", "s3://no-such-bucket", 1)
		}, "bucket", StatusFailure, "does not exist or these credentials may not use it"},
		{"wrong bucket, admin credentials", root, func(t *testing.T, cfg *DoctorConfig) {
			cfg.Store = strings.Replace(cfg.Store, "s3://cache", "s3://no-such-bucket", 1)
		}, "bucket", StatusFailure, "bucket no-such-bucket does not exist"},
		{"no anonymous read", root, func(t *testing.T, cfg *DoctorConfig) {
			if _, err := s.m.Client().DeleteBucketPolicy(context.Background(), &awss3.DeleteBucketPolicyInput{Bucket: aws.String("cache")}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_, err := s.m.Client().PutBucketPolicy(context.Background(), &awss3.PutBucketPolicyInput{Bucket: aws.String("cache"), Policy: aws.String(AnonymousReadPolicy("cache"))})
				if err != nil {
					t.Error(err)
				}
			})
		}, "public-read", StatusFailure, "denied"},
		{"age-based expiry", s.writer.Env("us-east-1"), func(t *testing.T, cfg *DoctorConfig) {
			_, err := s.m.Client().PutBucketLifecycleConfiguration(context.Background(), &awss3.PutBucketLifecycleConfigurationInput{
				Bucket: aws.String("cache"),
				LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: []types.LifecycleRule{{
					ID:         aws.String("expire-90"),
					Status:     types.ExpirationStatusEnabled,
					Filter:     &types.LifecycleRuleFilter{Prefix: aws.String("")},
					Expiration: &types.LifecycleExpiration{Days: aws.Int32(90)},
				}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				s.m.Client().DeleteBucketLifecycle(context.Background(), &awss3.DeleteBucketLifecycleInput{Bucket: aws.String("cache")})
			})
		}, "lifecycle-expiry", StatusWarning, "expire-90 expires objects 90 days"},
		{"world-readable key", s.writer.Env("us-east-1"), func(t *testing.T, cfg *DoctorConfig) {
			chmod(t, cfg.SecretKeyFile, 0o644)
			t.Cleanup(func() { chmod(t, cfg.SecretKeyFile, 0o600) })
		}, "key-permissions", StatusFailure, "every user"},
		{"mismatched public key", s.writer.Env("us-east-1"), func(t *testing.T, cfg *DoctorConfig) {
			cfg.PublicKey = mustKey(t).Public().String()
		}, "public-key", StatusFailure, "is signed with"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := s.doctorConfig()
			if tt.breakf != nil {
				tt.breakf(t, &cfg)
			}
			useCredentials(t, tt.env)
			r := doctorReport(t, cfg)
			c, ok := r.Get(tt.check)
			if !ok || c.Status != tt.want || !strings.Contains(c.Message+" "+c.Fix, tt.text) || c.Fix == "" {
				t.Fatalf("check %s = %+v (present %v), want %s naming %q with a fix", tt.check, c, ok, tt.want, tt.text)
			}
			wantCode := map[Status]int{StatusWarning: 1, StatusFailure: 2}[tt.want]
			if r.ExitCode() != wantCode {
				t.Errorf("exit code %d, want %d", r.ExitCode(), wantCode)
			}
		})
	}
	// Whatever failed, no probe is left behind by credentials that may
	// delete it.
	out, err := s.m.Client().ListObjectsV2(context.Background(), &awss3.ListObjectsV2Input{Bucket: aws.String("cache"), Prefix: aws.String(ProbePrefix)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		t.Errorf("probe left behind: %s", aws.ToString(o.Key))
	}
}

// normalizePolicy renders a policy document with its string lists sorted,
// since servers return them in any order.
func normalizePolicy(t *testing.T, policy string) string {
	t.Helper()
	var doc any
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		t.Fatalf("policy %q: %v", policy, err)
	}
	var sortLists func(v any) any
	sortLists = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				v[k] = sortLists(x)
			}
		case []any:
			for i, x := range v {
				v[i] = sortLists(x)
			}
			slices.SortFunc(v, func(a, b any) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		}
		return v
	}
	b, err := json.Marshal(sortLists(doc))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
