package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Admin runs the bucket-level operations that setting up and checking a
// cache need, beside the object operations of Store: creating the bucket,
// its policy, its lifecycle rules and versioning, and probes of single
// permissions. Each method makes the requests it names and nothing else.
// Errors are translated like Store's: errors.Is finds uploader's neutral
// causes (uploader.ErrAccessDenied, uploader.ErrNoSuchBucket, ...). An
// Admin is safe for concurrent use.
type Admin struct {
	s *Store
}

// Admin returns the bucket administration view of s.
func (s *Store) Admin() *Admin { return &Admin{s: s} }

// Bucket is the bucket's name.
func (a *Admin) Bucket() string { return a.s.cfg.Bucket }

// Region is the region requests are signed for: the store URL's, else the
// AWS configuration's, else DefaultRegion.
func (a *Admin) Region() string { return a.s.cfg.Region }

// ObjectURL is the plain HTTP(S) URL under which the bucket's objects are
// served to anonymous clients, as a Nix substituter URL: the endpoint and
// bucket for path-style addressing, the virtual-hosted AWS name otherwise.
func (a *Admin) ObjectURL() string {
	endpoint, _ := a.s.cfg.endpointURL()
	switch {
	case endpoint != "" && a.s.cfg.pathStyle():
		return endpoint + "/" + a.s.cfg.Bucket
	case endpoint != "":
		scheme, host, _ := strings.Cut(endpoint, "://")
		return scheme + "://" + a.s.cfg.Bucket + "." + host
	}
	return "https://" + a.s.cfg.Bucket + ".s3." + a.s.cfg.Region + ".amazonaws.com"
}

// Credentials names the source in the AWS default chain that supplied the
// credentials (environment, shared files, a role...) and the access key ID.
// The secret never leaves the SDK.
func (a *Admin) Credentials(ctx context.Context) (source, accessKeyID string, err error) {
	provider := a.s.client.Options().Credentials
	if provider == nil {
		return "", "", errors.New("s3: no credentials provider")
	}
	creds, err := provider.Retrieve(ctx)
	if err != nil {
		return "", "", fmt.Errorf("s3: credentials: %w", translate(err))
	}
	return creds.Source, creds.AccessKeyID, nil
}

// ServerInfo is what the server's response headers tell about it.
type ServerInfo struct {
	// Date is the server's clock (the Date header), zero when it sent none.
	Date time.Time
	// Server is the Server header ("MinIO", "AmazonS3", ...).
	Server string
	// BucketRegion is the region the server says the bucket is in
	// (x-amz-bucket-region), or "".
	BucketRegion string
	// Status is the HTTP status of HeadBucket: 200 when the bucket exists
	// and the credentials may use it, 403, 404, 301 (another region)...
	Status int
	// TLS reports whether the endpoint was reached over HTTPS.
	TLS bool
}

// Ping sends one HeadBucket, not retried, and reports the response's
// headers. A response of any status is success (err nil) as far as Ping is
// concerned: the endpoint answered. err is non-nil only when no HTTP
// response arrived (network, DNS, TLS, timeout, no credentials to sign
// with); it wraps uploader's neutral cause where there is one, and the
// standard library's TLS and x509 errors.
func (a *Admin) Ping(ctx context.Context) (ServerInfo, error) {
	var info ServerInfo
	_, err := a.s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &a.s.cfg.Bucket},
		withResponseHeaders(func(resp *http.Response) {
			info.Status = resp.StatusCode
			info.Server = resp.Header.Get("Server")
			info.BucketRegion = resp.Header.Get("X-Amz-Bucket-Region")
			info.TLS = resp.TLS != nil
			if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
				info.Date = d
			}
		}),
		func(o *awss3.Options) { o.RetryMaxAttempts = 1 })
	if info.Status != 0 {
		return info, nil
	}
	return info, fmt.Errorf("s3: head bucket %s: %w", a.s.cfg.Bucket, translate(err))
}

// withResponseHeaders calls see with the raw HTTP response of every attempt
// of an operation, including failed ones.
func withResponseHeaders(see func(*http.Response)) func(*awss3.Options) {
	return func(o *awss3.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("nixs3qResponseHeaders",
				func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
					middleware.DeserializeOutput, middleware.Metadata, error,
				) {
					out, md, err := next.HandleDeserialize(ctx, in)
					if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp != nil {
						see(resp.Response)
					}
					return out, md, err
				}), middleware.After)
		})
	}
}

// BucketLocation asks the server which region the bucket is in
// (GetBucketLocation); the empty answer AWS gives for us-east-1 is
// returned as "us-east-1".
func (a *Admin) BucketLocation(ctx context.Context) (string, error) {
	out, err := a.s.client.GetBucketLocation(ctx, &awss3.GetBucketLocationInput{Bucket: &a.s.cfg.Bucket})
	if err != nil {
		return "", fmt.Errorf("s3: bucket location of %s: %w", a.s.cfg.Bucket, translate(err))
	}
	switch loc := string(out.LocationConstraint); loc {
	case "":
		return "us-east-1", nil
	case "EU":
		return "eu-west-1", nil
	default:
		return loc, nil
	}
}

// CreateBucket creates the bucket in Region when it does not exist. It
// reports whether it created it; a bucket the caller already owns is
// (false, nil). Any other error, including a bucket name taken by someone
// else, is returned.
func (a *Admin) CreateBucket(ctx context.Context) (bool, error) {
	in := &awss3.CreateBucketInput{Bucket: &a.s.cfg.Bucket}
	// us-east-1 is the default location and must not be named; S3-compatible
	// servers accept either.
	if a.s.cfg.Region != "" && a.s.cfg.Region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(a.s.cfg.Region),
		}
	}
	_, err := a.s.client.CreateBucket(ctx, in)
	if err == nil {
		return true, nil
	}
	var owned *types.BucketAlreadyOwnedByYou
	if errors.As(err, &owned) || errorCode(err) == "BucketAlreadyOwnedByYou" {
		return false, nil
	}
	return false, fmt.Errorf("s3: create bucket %s: %w", a.s.cfg.Bucket, translate(err))
}

// BucketPolicy returns the bucket's policy document, or "" when it has
// none.
func (a *Admin) BucketPolicy(ctx context.Context) (string, error) {
	out, err := a.s.client.GetBucketPolicy(ctx, &awss3.GetBucketPolicyInput{Bucket: &a.s.cfg.Bucket})
	if err != nil {
		if errorCode(err) == "NoSuchBucketPolicy" {
			return "", nil
		}
		return "", fmt.Errorf("s3: bucket policy of %s: %w", a.s.cfg.Bucket, translate(err))
	}
	return aws.ToString(out.Policy), nil
}

// PutBucketPolicy replaces the bucket's policy with policy, a JSON document.
func (a *Admin) PutBucketPolicy(ctx context.Context, policy string) error {
	_, err := a.s.client.PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: &a.s.cfg.Bucket, Policy: &policy})
	if err != nil {
		return fmt.Errorf("s3: put bucket policy of %s: %w", a.s.cfg.Bucket, translate(err))
	}
	return nil
}

// LifecycleRule is the part of a bucket lifecycle rule that matters to a
// Nix cache.
type LifecycleRule struct {
	ID      string
	Enabled bool
	// Prefix is the rule's key prefix filter ("" for the whole bucket, or
	// when the filter is on tags or sizes only).
	Prefix string
	// ExpirationDays and ExpirationDate delete current objects by age or at
	// a date; zero when the rule has no such expiration.
	ExpirationDays int
	ExpirationDate time.Time
	// AbortIncompleteDays aborts multipart uploads this many days after
	// they began; 0 when the rule does not.
	AbortIncompleteDays int
	// NoncurrentDays deletes noncurrent versions this many days after they
	// became noncurrent; 0 when the rule does not.
	NoncurrentDays int
}

// Lifecycle returns the bucket's lifecycle rules; none is (nil, nil).
func (a *Admin) Lifecycle(ctx context.Context) ([]LifecycleRule, error) {
	out, err := a.s.client.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: &a.s.cfg.Bucket})
	if err != nil {
		if errorCode(err) == "NoSuchLifecycleConfiguration" {
			return nil, nil
		}
		return nil, fmt.Errorf("s3: lifecycle rules of %s: %w", a.s.cfg.Bucket, translate(err))
	}
	rules := make([]LifecycleRule, 0, len(out.Rules))
	for _, r := range out.Rules {
		rule := LifecycleRule{ID: aws.ToString(r.ID), Enabled: r.Status == types.ExpirationStatusEnabled}
		if r.Filter != nil {
			rule.Prefix = aws.ToString(r.Filter.Prefix)
			if r.Filter.And != nil && rule.Prefix == "" {
				rule.Prefix = aws.ToString(r.Filter.And.Prefix)
			}
		}
		if rule.Prefix == "" {
			rule.Prefix = aws.ToString(r.Prefix) //nolint:staticcheck // the legacy field some servers still send
		}
		if e := r.Expiration; e != nil {
			rule.ExpirationDays = int(aws.ToInt32(e.Days))
			rule.ExpirationDate = aws.ToTime(e.Date)
		}
		if ab := r.AbortIncompleteMultipartUpload; ab != nil {
			rule.AbortIncompleteDays = int(aws.ToInt32(ab.DaysAfterInitiation))
		}
		if nc := r.NoncurrentVersionExpiration; nc != nil {
			rule.NoncurrentDays = int(aws.ToInt32(nc.NoncurrentDays))
		}
		rules = append(rules, rule)
	}
	return rules, nil
}

// AbortRuleID names the lifecycle rule EnsureAbortIncompleteRule adds.
const AbortRuleID = "nixs3q-abort-incomplete-multipart"

// EnsureAbortIncompleteRule makes sure an enabled rule of the bucket's
// lifecycle configuration aborts every incomplete multipart upload, so
// that the parts of uploads interrupted by a crash stop costing storage.
// When none does, it adds one for the whole bucket, named AbortRuleID,
// aborting uploads days after they began, and keeps every existing rule
// as it is. It reports whether it changed the configuration. Servers
// without lifecycle rules give an error wrapping uploader.ErrNotSupported.
func (a *Admin) EnsureAbortIncompleteRule(ctx context.Context, days int) (bool, error) {
	if days <= 0 {
		return false, fmt.Errorf("s3: abort incomplete uploads after %d days: want a positive number", days)
	}
	var rules []types.LifecycleRule
	var minSize types.TransitionDefaultMinimumObjectSize
	out, err := a.s.client.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: &a.s.cfg.Bucket})
	switch {
	case err == nil:
		rules, minSize = out.Rules, out.TransitionDefaultMinimumObjectSize
	case errorCode(err) != "NoSuchLifecycleConfiguration":
		return false, fmt.Errorf("s3: lifecycle rules of %s: %w", a.s.cfg.Bucket, translate(err))
	}
	for _, r := range rules {
		if r.Status == types.ExpirationStatusEnabled && r.AbortIncompleteMultipartUpload != nil &&
			aws.ToInt32(r.AbortIncompleteMultipartUpload.DaysAfterInitiation) > 0 && wholeBucket(r) {
			return false, nil
		}
	}
	rules = append(rules, types.LifecycleRule{
		ID:     aws.String(AbortRuleID),
		Status: types.ExpirationStatusEnabled,
		Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")},
		AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{
			DaysAfterInitiation: aws.Int32(int32(days)),
		},
	})
	_, err = a.s.client.PutBucketLifecycleConfiguration(ctx, &awss3.PutBucketLifecycleConfigurationInput{
		Bucket:                             &a.s.cfg.Bucket,
		LifecycleConfiguration:             &types.BucketLifecycleConfiguration{Rules: rules},
		TransitionDefaultMinimumObjectSize: minSize,
	})
	if err != nil {
		return false, fmt.Errorf("s3: put lifecycle rules of %s: %w", a.s.cfg.Bucket, translate(err))
	}
	return true, nil
}

// wholeBucket reports whether a rule applies to every key: no prefix, tag
// or size filter.
func wholeBucket(r types.LifecycleRule) bool {
	if aws.ToString(r.Prefix) != "" { //nolint:staticcheck // the legacy field some servers still send
		return false
	}
	f := r.Filter
	return f == nil || (aws.ToString(f.Prefix) == "" && f.And == nil && f.Tag == nil &&
		f.ObjectSizeGreaterThan == nil && f.ObjectSizeLessThan == nil)
}

// Versioning returns the bucket's versioning state: "Enabled",
// "Suspended", or "" for a bucket that never had versioning.
func (a *Admin) Versioning(ctx context.Context) (string, error) {
	out, err := a.s.client.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: &a.s.cfg.Bucket})
	if err != nil {
		return "", fmt.Errorf("s3: versioning of %s: %w", a.s.cfg.Bucket, translate(err))
	}
	return string(out.Status), nil
}

// HeadStatus sends one HeadObject for key and returns the HTTP status of
// the answer (200, 403, 404...). For an absent key it is 404 when the
// credentials may list the bucket and 403 when they may not. err is
// non-nil only when no response arrived.
func (a *Admin) HeadStatus(ctx context.Context, key string) (int, error) {
	_, err := a.s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &a.s.cfg.Bucket, Key: &key})
	if err == nil {
		return http.StatusOK, nil
	}
	if code := httpStatus(err); code != 0 {
		return code, nil
	}
	return 0, fmt.Errorf("s3: head %s: %w", key, translate(err))
}

// ProbeMultipart creates a multipart upload for key and aborts it at once,
// proving s3:PutObject for multipart uploads and s3:AbortMultipartUpload.
// Nothing becomes visible at key. When the abort fails, the error says so
// and names the upload.
func (a *Admin) ProbeMultipart(ctx context.Context, key string) error {
	out, err := a.s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &a.s.cfg.Bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("s3: create multipart upload %s: %w", key, translate(err))
	}
	_, err = a.s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket: &a.s.cfg.Bucket, Key: &key, UploadId: out.UploadId,
	})
	if err != nil {
		return fmt.Errorf("s3: abort multipart upload %s (upload ID %s): %w", key, aws.ToString(out.UploadId), translate(err))
	}
	return nil
}

func errorCode(err error) string {
	var apiErr interface{ ErrorCode() string }
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}
