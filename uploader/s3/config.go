package s3

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of Config, filled into its zero fields by New (withDefaults).
const (
	DefaultRegion          = "us-east-1"
	DefaultPartSize        = 8 << 20
	DefaultPartConcurrency = 4
	DefaultMaxAttempts     = 6
	DefaultMaxBackoff      = 20 * time.Second
	DefaultRetryDelay      = time.Second
	DefaultThrottleDelay   = 5 * time.Second
	DefaultMaxRetryAfter   = time.Minute
	DefaultStallTimeout    = 2 * time.Minute
	// DefaultMaxReadRequests and DefaultMaxWriteRequests cap the adaptive
	// request limits; DefaultInitialRequests is where both start.
	DefaultMaxReadRequests  = 512
	DefaultMaxWriteRequests = 256
	DefaultInitialRequests  = 32

	// MinPartSize and MaxPartSize are S3's limits for multipart parts.
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30

	// maxParts is the part count the chosen part size aims to stay under,
	// leaving headroom below S3's hard limit of 10,000.
	maxParts = 9000
)

// Config describes an S3 (or S3-compatible) bucket used as a Nix binary
// cache. Credentials are not part of it: they come from the AWS default
// chain (environment, shared config and credentials files with Profile,
// container and instance roles).
type Config struct {
	// Bucket is the bucket name. Required.
	Bucket string
	// Region is the bucket's region. Empty uses the AWS configuration
	// (AWS_REGION, the profile), and DefaultRegion when that has none.
	Region string
	// Endpoint is a custom S3 endpoint for S3-compatible servers: a host
	// ("127.0.0.1:9000", combined with Scheme) or a full URL
	// ("http://127.0.0.1:9000"). A full URL may have a path prefix
	// ("https://gw.example.org/s3"): requests go to that path, followed by
	// the bucket in path style (as Nix 2.36 does), or to
	// https://BUCKET.gw.example.org/s3/KEY in virtual style. Empty means AWS.
	Endpoint string
	// Profile names the shared-config profile to load credentials and
	// region from. Empty uses AWS_PROFILE or "default".
	Profile string
	// Scheme is "http" or "https" (the default) for a host-only Endpoint.
	Scheme string
	// AddressingStyle is "auto" (or empty), "path" or "virtual". A custom
	// Endpoint implies path-style unless it is "virtual".
	AddressingStyle string
	// StorageClass is sent with every object when set (e.g. "STANDARD_IA").
	StorageClass string
	// Multipart sends bodies larger than one part as multipart uploads,
	// streaming with memory bounded by PartSize × PartConcurrency. When
	// false every object is a single PutObject: bodies larger than one part
	// are first spooled to a temporary file in $TMPDIR, and objects over
	// 5 GiB fail. storeurl turns it on unless the URL says
	// multipart-upload=false.
	Multipart bool
	// PartSize is the minimum multipart part size in bytes; 0 means
	// DefaultPartSize. Larger parts are chosen when PutOptions.SizeHint
	// shows that 9,000 parts would not hold the object.
	PartSize int64
	// PartConcurrency is the number of parts uploaded at once per object;
	// 0 means DefaultPartConcurrency.
	PartConcurrency int
	// MaxAttempts is the number of attempts the AWS SDK makes per request
	// before giving up; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// MaxBackoff caps the backoff between attempts (Nix's retry-max-delay);
	// 0 means DefaultMaxBackoff. It does not cap a server's Retry-After,
	// which MaxRetryAfter bounds.
	MaxBackoff time.Duration
	// RetryDelay is the base of the exponential backoff after a transient
	// failure (Nix's retry-delay): attempt n waits a random time ("full
	// jitter") up to RetryDelay × 2^(n-1), at most MaxBackoff. 0 means
	// DefaultRetryDelay.
	RetryDelay time.Duration
	// ThrottleDelay is the base of the backoff after the server throttled
	// the request (429, 503, SlowDown; Nix's retry-delay-rate-limited),
	// otherwise computed like RetryDelay. 0 means DefaultThrottleDelay.
	ThrottleDelay time.Duration
	// MaxRetryAfter is the longest Retry-After the SDK waits out itself
	// before a retry; a longer one ends the request so the queue can
	// reschedule it. 0 means DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// StallTimeout ends a request whose connection moves no byte either way
	// for this long (a server that stops reading a body, or stops sending a
	// response), so that a stalled upload fails and is retried instead of
	// holding a worker forever. 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// MaxReadRequests and MaxWriteRequests cap the number of requests in
	// flight at once, reads (HeadObject, GetObject, listings) and writes
	// (PutObject, parts, deletes) separately, over all callers of the
	// Store. Within the cap the limit adapts: it starts at
	// DefaultInitialRequests, grows while the server answers and halves
	// when it throttles (SlowDown, HTTP 429 or 503); see package aimd.
	// 0 means DefaultMaxReadRequests and DefaultMaxWriteRequests.
	MaxReadRequests, MaxWriteRequests int
	// Observer, when set, is told about every request attempt (metrics).
	Observer Observer
	// HTTPClient replaces the SDK's HTTP client (tests).
	HTTPClient *http.Client
}

// withDefaults fills the zero fields, except Region: New takes an empty one
// from the AWS configuration first, then DefaultRegion.
func (c Config) withDefaults() Config {
	c.PartSize = cmp.Or(c.PartSize, DefaultPartSize)
	c.PartConcurrency = cmp.Or(c.PartConcurrency, DefaultPartConcurrency)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, DefaultMaxAttempts)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	c.RetryDelay = cmp.Or(c.RetryDelay, DefaultRetryDelay)
	c.ThrottleDelay = cmp.Or(c.ThrottleDelay, DefaultThrottleDelay)
	c.MaxRetryAfter = cmp.Or(c.MaxRetryAfter, DefaultMaxRetryAfter)
	c.StallTimeout = cmp.Or(c.StallTimeout, DefaultStallTimeout)
	c.MaxReadRequests = cmp.Or(c.MaxReadRequests, DefaultMaxReadRequests)
	c.MaxWriteRequests = cmp.Or(c.MaxWriteRequests, DefaultMaxWriteRequests)
	return c
}

// Validate reports the first problem with c, naming the field. Zero fields
// stand for their defaults. It touches neither the network nor the AWS
// configuration.
func (c Config) Validate() error {
	switch {
	case c.Bucket == "":
		return errors.New("s3: bucket name is empty")
	case strings.ContainsAny(c.Bucket, "/?#@ "):
		return fmt.Errorf("s3: invalid bucket name %q", c.Bucket)
	case c.Scheme != "" && c.Scheme != "http" && c.Scheme != "https":
		return fmt.Errorf("s3: scheme %q: want http or https", c.Scheme)
	case c.AddressingStyle != "" && c.AddressingStyle != "auto" && c.AddressingStyle != "path" && c.AddressingStyle != "virtual":
		return fmt.Errorf("s3: addressing style %q: want auto, path or virtual", c.AddressingStyle)
	case c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > MaxPartSize):
		return fmt.Errorf("s3: part size %d: want between %d (5 MiB) and %d (5 GiB)", c.PartSize, MinPartSize, int64(MaxPartSize))
	case c.PartConcurrency < 0:
		return fmt.Errorf("s3: part concurrency %d is negative", c.PartConcurrency)
	case c.MaxReadRequests < 0 || c.MaxWriteRequests < 0:
		return errors.New("s3: negative request limit")
	case c.MaxAttempts < 0:
		return fmt.Errorf("s3: max attempts %d is negative", c.MaxAttempts)
	case c.MaxBackoff < 0 || c.MaxRetryAfter < 0 || c.StallTimeout < 0 || c.RetryDelay < 0 || c.ThrottleDelay < 0:
		return errors.New("s3: negative backoff")
	case strings.ContainsAny(c.StorageClass, " /?&="):
		return fmt.Errorf("s3: invalid storage class %q", c.StorageClass)
	}
	_, err := c.endpointURL()
	return err
}

// endpointURL is the base URL of a custom endpoint, with its path prefix
// and no trailing slash, or "" for AWS.
func (c Config) endpointURL() (string, error) {
	if c.Endpoint == "" {
		return "", nil
	}
	raw := c.Endpoint
	if !strings.Contains(raw, "://") {
		scheme := c.Scheme
		if scheme == "" {
			scheme = "https"
		}
		raw = scheme + "://" + raw
	}
	u, err := url.Parse(raw)
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err // without the URL, which might hold credentials
	}
	switch {
	case err != nil:
		return "", fmt.Errorf("s3: endpoint: %w", err)
	case u.User != nil:
		return "", fmt.Errorf("s3: endpoint must not contain credentials")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("s3: endpoint %q: scheme must be http or https", c.Endpoint)
	case c.Scheme != "" && u.Scheme != c.Scheme:
		return "", fmt.Errorf("s3: endpoint %q contradicts scheme %q", c.Endpoint, c.Scheme)
	case u.Host == "":
		return "", fmt.Errorf("s3: endpoint %q has no host", c.Endpoint)
	case u.RawQuery != "" || u.Fragment != "" || u.RawPath != "" || strings.Contains(u.Path, "//"):
		return "", fmt.Errorf("s3: endpoint %q: want scheme, host, port and an optional plain path prefix", c.Endpoint)
	case u.Path != "" && u.Path != "/" && !strings.Contains(c.Endpoint, "://"):
		return "", fmt.Errorf("s3: endpoint %q: a path prefix needs the full URL form, %s://HOST/PREFIX", c.Endpoint, u.Scheme)
	}
	return u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/"), nil
}

// pathStyle reports whether requests address the bucket in the path.
func (c Config) pathStyle() bool {
	switch c.AddressingStyle {
	case "path":
		return true
	case "virtual":
		return false
	}
	return c.Endpoint != ""
}

// partSize picks the multipart part size for an object of at most hint
// bytes (0 = unknown): at least the configured size, and large enough that
// the object, with 5% slack for incompressible data growing under
// compression, fits in maxParts parts.
func (c Config) partSize(hint int64) int64 {
	size := c.PartSize
	if hint > 0 {
		slack := hint + hint/20
		if need := (slack + maxParts - 1) / maxParts; need > size {
			size = need
		}
	}
	return min(size, MaxPartSize)
}
