package setup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/local"
	"github.com/nixs3q/nixs3q/uploader/s3"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

// bucketAdmin is what Init and Doctor need of an S3 bucket beyond object
// reads and writes; *s3.Admin implements it.
type bucketAdmin interface {
	Bucket() string
	Region() string
	ObjectURL() string
	Credentials(ctx context.Context) (source, accessKeyID string, err error)
	Ping(ctx context.Context) (s3.ServerInfo, error)
	BucketLocation(ctx context.Context) (string, error)
	CreateBucket(ctx context.Context) (bool, error)
	BucketPolicy(ctx context.Context) (string, error)
	PutBucketPolicy(ctx context.Context, policy string) error
	Lifecycle(ctx context.Context) ([]s3.LifecycleRule, error)
	Versioning(ctx context.Context) (string, error)
	EnsureAbortIncompleteRule(ctx context.Context, days int) (bool, error)
	HeadStatus(ctx context.Context, key string) (int, error)
	ProbeMultipart(ctx context.Context, key string) error
}

var _ bucketAdmin = (*s3.Admin)(nil)

// openS3 opens the bucket of spec with its administration view. attempts
// bounds the SDK's attempts per request (0: the s3 package default).
func openS3(ctx context.Context, spec storeurl.Spec, attempts int, log *zap.Logger) (uploader.Cache, bucketAdmin, error) {
	cfg := spec.S3
	if attempts > 0 {
		cfg.MaxAttempts = attempts
	}
	store, err := s3.New(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return store, store.Admin(), nil
}

// openDir opens the cache directory of spec, creating it when missing.
func openDir(spec storeurl.Spec) (uploader.Cache, error) {
	return local.New(spec.Dir)
}

// readCacheInfo reads and parses the cache's nix-cache-info. A missing file
// is an error wrapping fs.ErrNotExist.
func readCacheInfo(ctx context.Context, cache uploader.Cache) (nix.CacheInfo, error) {
	rc, err := cache.Get(ctx, nix.CacheInfoKey)
	if err != nil {
		return nix.CacheInfo{}, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return nix.CacheInfo{}, fmt.Errorf("read %s: %w", nix.CacheInfoKey, err)
	}
	return nix.ParseCacheInfo(string(data))
}

func writeCacheInfo(ctx context.Context, cache uploader.Cache, info nix.CacheInfo) error {
	text := info.String()
	return cache.Put(ctx, nix.CacheInfoKey, strings.NewReader(text), uploader.PutOptions{
		ContentType: nix.CacheInfoContentType,
		Size:        int64(len(text)),
		SizeHint:    int64(len(text)),
	})
}

// isTLSError reports a failed TLS handshake or certificate check.
func isTLSError(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidErr x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	return errors.As(err, &certErr) || errors.As(err, &unknownAuthority) || errors.As(err, &hostErr) ||
		errors.As(err, &invalidErr) || errors.As(err, &recordErr)
}

// errStopList ends a listing early.
var errStopList = errors.New("stop listing")

// firstNarInfo returns the key of a narinfo at the cache's root, or "" when
// there is none; it reads at most the first 10,000 keys.
func firstNarInfo(ctx context.Context, cache uploader.Cache) (string, error) {
	var found string
	n := 0
	err := cache.List(ctx, "", func(o uploader.Object) error {
		if strings.HasSuffix(o.Key, ".narinfo") && !strings.Contains(o.Key, "/") {
			found = o.Key
			return errStopList
		}
		if n++; n >= 10000 {
			return errStopList
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopList) {
		return "", err
	}
	return found, nil
}

// isNotExist reports a missing object.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// clientStoreURL is raw, the store URL given, without the parameters that
// only concern writing (the signing key), for clients' substituters.
func clientStoreURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return storeurl.Redact(raw)
	}
	q := u.Query()
	for _, p := range []string{"secret-key", "compression", "compression-level", "parallel-compression",
		"write-nar-listing", "multipart-upload", "multipart-chunk-size", "storage-class"} {
		q.Del(p)
	}
	u.RawQuery = q.Encode()
	u.User = nil
	return u.String()
}

func dirExists(dir string) bool {
	info, err := os.Stat(dir)
	return err == nil && info.IsDir()
}
