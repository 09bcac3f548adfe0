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
