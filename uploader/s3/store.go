package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/internal/aimd"
	"github.com/nixs3q/nixs3q/uploader"
)

var (
	_ uploader.Cache          = (*Store)(nil)
	_ uploader.ContentEncoder = (*Store)(nil)
)

// responseHeaderTimeout bounds the wait for a response once a request has
// been sent in full, so a server that stops answering fails the attempt
// (and the SDK retries) instead of hanging a worker forever.
const responseHeaderTimeout = 2 * time.Minute

// maxIdleConnsPerHost bounds the connections kept open for reuse: above
// the most requests nixs3q has in flight at once (scan.DefaultConcurrency).
const maxIdleConnsPerHost = 128

// Store is a Nix binary cache in an S3 bucket. It is safe for concurrent use.
type Store struct {
	cfg    Config
	client *awss3.Client
	reads  *aimd.Limiter // HeadObject, GetObject, listings
	writes *aimd.Limiter // every other operation
	parts  partPool
	log    *zap.Logger
	name   string
}

// New validates cfg, loads the AWS configuration (default credential chain,
// Profile, region) and returns a Store for cfg. It makes no request: a
// missing bucket or bad credentials show up on the first operation. Zero
// fields of cfg take the package defaults.
func New(ctx context.Context, cfg Config, log *zap.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	endpoint, _ := cfg.endpointURL() // checked by Validate
	reads, writes, err := newLimiters(cfg)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}

	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return newRetryer(cfg) }),
		// S3-compatible servers (MinIO, Ceph, R2, Garage) reject the
		// flexible checksums newer SDKs send by default.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(cfg.HTTPClient))
	} else {
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.ResponseHeaderTimeout = responseHeaderTimeout
			tr.DialContext = stallDialer(tr.DialContext, cfg.StallTimeout)
			// The SDK keeps 10 idle connections per host; with more
			// requests in flight (narinfo lookups, whole-cache scans)
			// every further one would be closed after its request and
			// dialled again for the next.
			tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
		})))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	cfg.Region = awsCfg.Region

	s := &Store{cfg: cfg, reads: reads, writes: writes, log: log.Named("s3"), name: storeName(cfg, endpoint)}
	s.client = awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = cfg.pathStyle()
		// Payloads are not hashed into the signature; see unsignedPayload.
		o.APIOptions = append(o.APIOptions, unsignedPayload, s.addLimit)
	})
	s.log.Debug("opened bucket", zap.String("cache", s.name), zap.Bool("path_style", cfg.pathStyle()),
		zap.Bool("multipart", cfg.Multipart), zap.Int("part_concurrency", cfg.PartConcurrency))
	return s, nil
}

func storeName(cfg Config, endpoint string) string {
	q := url.Values{}
	q.Set("region", cfg.Region)
	if endpoint != "" {
		q.Set("endpoint", endpoint)
	}
	return (&url.URL{Scheme: "s3", Host: cfg.Bucket, RawQuery: q.Encode()}).String()
}

// String names the bucket as an s3:// URL with region and endpoint; it never
// contains credentials.
func (s *Store) String() string { return s.name }

// Has reports whether key exists, with one HeadObject. Both 404 and 403 are
// (false, nil): buckets whose credentials lack s3:ListBucket answer 403 for
// absent keys.
func (s *Store) Has(ctx context.Context, key string) (bool, error) {
	if err := uploader.CheckKey(key); err != nil {
		return false, fmt.Errorf("s3: has: %w", err)
	}
	_, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err == nil {
		return true, nil
	}
	var notFound *types.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	switch httpStatus(err) {
	case http.StatusNotFound, http.StatusForbidden:
		return false, nil
	}
	return false, fmt.Errorf("s3: head %s: %w", key, translate(err))
}

// Get opens key with GetObject; the caller closes the body. A missing key
// (NoSuchKey, 404) gives an error wrapping fs.ErrNotExist.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := uploader.CheckKey(key); err != nil {
		return nil, fmt.Errorf("s3: get: %w", err)
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		var noKey *types.NoSuchKey
		if errors.As(err, &noKey) || httpStatus(err) == http.StatusNotFound && !isNoSuchBucket(err) {
			return nil, fmt.Errorf("s3: get %s: %w", key, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("s3: get %s: %w", key, translate(err))
	}
	return out.Body, nil
}
