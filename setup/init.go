package setup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/s3"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

// InitConfig says what cache Init sets up.
type InitConfig struct {
	// Store is the cache's store URL, s3://BUCKET?... or file:///DIR.
	// Required.
	Store string
	// SecretKeyFile is the signing key file; generated when missing.
	// Required.
	SecretKeyFile string
	// KeyName names a generated key; empty means the bucket's (or the
	// directory's) name with "-1", Nix's convention. It is ignored when the
	// key file exists.
	KeyName string
	// PublicRead adds the anonymous-read statement to the bucket policy (S3
	// only; a directory is served by whatever web server serves it).
	PublicRead bool
	// Priority, when non-zero, is the Priority of nix-cache-info: written
	// into a new file, and rewritten in an existing one that says otherwise.
	// Zero leaves an existing file alone and gives a new one the URL's
	// priority= (default 40).
	Priority int
	// StoreDir is the Nix store directory; empty means nix.DefaultStoreDir.
	StoreDir string
	// GC says 'nixs3q gc' will run with the writer's credentials, so the
	// printed IAM policy grants s3:DeleteObject.
	GC bool
}

// Validate reports the first problem with c.
func (c InitConfig) Validate() error {
	switch {
	case c.Store == "":
		return errors.New("setup: a store URL is required")
	case c.SecretKeyFile == "":
		return errors.New("setup: a secret key file is required")
	case c.Priority < 0:
		return fmt.Errorf("setup: priority %d is negative", c.Priority)
	case c.StoreDir != "" && !filepath.IsAbs(c.StoreDir):
		return fmt.Errorf("setup: store directory %q is not absolute", c.StoreDir)
	}
	return nil
}

// Step is one thing Init looked at, and what it did about it.
type Step struct {
	What    string `json:"what"`
	Changed bool   `json:"changed"`
}

// InitResult is what Init did and what the user must put elsewhere.
type InitResult struct {
	Steps []Step
	// PublicKey is the signing key's public half, for clients.
	PublicKey nix.PublicKey
	// Store is the store URL without credentials; ClientURL the URL
	// clients substitute from (an HTTP(S) URL for a bucket anyone may
	// read).
	Store, ClientURL string
	SecretKeyFile    string
	// Bucket is the bucket's name ("" for a directory).
	Bucket string
	// PublicRead reports whether the bucket policy lets anyone read.
	PublicRead bool
	GC         bool
	StoreDir   string
}

// Changed reports whether Init changed anything.
func (r *InitResult) Changed() bool {
	for _, s := range r.Steps {
		if s.Changed {
			return true
		}
	}
	return false
}

func (r *InitResult) step(changed bool, format string, args ...any) {
	r.Steps = append(r.Steps, Step{What: fmt.Sprintf(format, args...), Changed: changed})
}

// Init sets up the cache cfg names, doing only what is missing: the signing
// key file, the bucket (or directory), nix-cache-info and, with PublicRead,
// the anonymous-read bucket policy. Input is checked before anything is
// changed. On error, the steps done so far are in the returned result.
func Init(ctx context.Context, cfg InitConfig, log *zap.Logger) (*InitResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = nix.DefaultStoreDir
	}
	spec, err := storeurl.Parse(cfg.Store)
	if err != nil {
		return nil, err
	}
	if cfg.PublicRead && spec.Scheme != "s3" {
		return nil, errors.New("setup: --public-read applies to s3:// caches; serve a directory with a web server to make it public")
	}
	res := &InitResult{Store: storeurl.Redact(cfg.Store), SecretKeyFile: cfg.SecretKeyFile, GC: cfg.GC, StoreDir: cfg.StoreDir}
	name := cfg.KeyName
	if name == "" {
		base := spec.S3.Bucket
		if spec.Scheme == "file" {
			base = filepath.Base(spec.Dir)
		}
		name = base + "-1"
	}

	key, created, err := ensureKey(cfg.SecretKeyFile, name)
	if err != nil {
		return res, err
	}
	res.PublicKey = key.Public()
	if created {
		res.step(true, "generated signing key %s in %s (mode 0600)", key.Name, cfg.SecretKeyFile)
	} else if cfg.KeyName != "" && cfg.KeyName != key.Name {
		res.step(false, "signing key %s in %s kept; --key-name %s ignored: an existing key is never replaced (use another --secret-key-file for a new key)", key.Name, cfg.SecretKeyFile, cfg.KeyName)
	} else {
		res.step(false, "signing key %s in %s kept", key.Name, cfg.SecretKeyFile)
	}

	var cache uploader.Cache
	switch spec.Scheme {
	case "s3":
		var admin bucketAdmin
		cache, admin, err = openS3(ctx, spec, 0, log)
		if err != nil {
			return res, err
		}
		res.Bucket = admin.Bucket()
		info, err := initBucket(ctx, admin, res)
		if err != nil {
			return res, err
		}
		if err := initCacheInfo(ctx, cache, cfg, spec, res); err != nil {
			return res, err
		}
		if err := initPolicy(ctx, admin, cfg.PublicRead, res); err != nil {
			return res, err
		}
		if err := initLifecycle(ctx, admin, info, res); err != nil {
			return res, err
		}
		res.ClientURL = clientStoreURL(cfg.Store)
		if res.PublicRead {
			res.ClientURL = admin.ObjectURL()
		}
	case "file":
		existed := dirExists(spec.Dir)
		if cache, err = openDir(spec); err != nil {
			return res, fmt.Errorf("setup: %w", err)
		}
		res.step(!existed, "cache directory %s %s", spec.Dir, map[bool]string{true: "exists", false: "created"}[existed])
		if err := initCacheInfo(ctx, cache, cfg, spec, res); err != nil {
			return res, err
		}
		res.ClientURL = "file://" + spec.Dir
	}
	return res, nil
}

func initBucket(ctx context.Context, admin bucketAdmin, res *InitResult) (s3.ServerInfo, error) {
	info, err := admin.Ping(ctx)
	if err != nil {
		return info, fmt.Errorf("setup: cannot reach the S3 endpoint: %w", err)
	}
	if info.Status == http.StatusOK {
		res.step(false, "bucket %s exists", admin.Bucket())
		return info, nil
	}
	created, err := admin.CreateBucket(ctx)
	switch {
	case err != nil && errors.Is(err, uploader.ErrAccessDenied):
		return info, fmt.Errorf("setup: bucket %s is missing or not ours, and these credentials may not create it (run init with credentials allowed s3:CreateBucket, or create it): %w", admin.Bucket(), err)
	case err != nil:
		return info, fmt.Errorf("setup: %w", err)
	case created:
		res.step(true, "created bucket %s in %s", admin.Bucket(), admin.Region())
	default:
		res.step(false, "bucket %s exists", admin.Bucket())
	}
	return info, nil
}

// AbortIncompleteDays is the age at which the lifecycle rule Init adds
// aborts a multipart upload that never completed.
const AbortIncompleteDays = 7

// initLifecycle adds a rule aborting incomplete multipart uploads, the
// parts of which are otherwise billed forever, unless one exists. MinIO
// removes them itself and has no such rule. Credentials that may not change
// lifecycle rules, or a server without them, leave a note, not an error:
// the cache works without the rule.
func initLifecycle(ctx context.Context, admin bucketAdmin, info s3.ServerInfo, res *InitResult) error {
	if strings.EqualFold(info.Server, "MinIO") {
		return nil
	}
	changed, err := admin.EnsureAbortIncompleteRule(ctx, AbortIncompleteDays)
	switch {
	case errors.Is(err, uploader.ErrAccessDenied):
		res.step(false, "could not add a lifecycle rule aborting incomplete multipart uploads (s3:PutLifecycleConfiguration denied); add one by hand")
	case errors.Is(err, uploader.ErrNotSupported):
		res.step(false, "the server has no lifecycle rules; incomplete multipart uploads are its to clean up")
	case err != nil:
		return fmt.Errorf("setup: %w", err)
	case changed:
		res.step(true, "added lifecycle rule %s: incomplete multipart uploads are aborted after %d days", s3.AbortRuleID, AbortIncompleteDays)
	default:
		res.step(false, "a lifecycle rule aborts incomplete multipart uploads")
	}
	return nil
}

func initCacheInfo(ctx context.Context, cache uploader.Cache, cfg InitConfig, spec storeurl.Spec, res *InitResult) error {
	want := nix.CacheInfo{StoreDir: cfg.StoreDir, WantMassQuery: spec.Format.WantMassQuery, Priority: spec.Format.Priority}
	if cfg.Priority != 0 {
		want.Priority = cfg.Priority
	}
	have, err := readCacheInfo(ctx, cache)
	switch {
	case isNotExist(err):
		if err := writeCacheInfo(ctx, cache, want); err != nil {
			return fmt.Errorf("setup: write nix-cache-info: %w", err)
		}
		res.step(true, "wrote nix-cache-info (StoreDir %s, Priority %d)", want.StoreDir, want.Priority)
		return nil
	case err != nil:
		return fmt.Errorf("setup: read nix-cache-info: %w", err)
	case have.StoreDir != cfg.StoreDir:
		return fmt.Errorf("setup: the cache's nix-cache-info says StoreDir %s, but this store is %s: use another cache for this store: %w",
			have.StoreDir, cfg.StoreDir, uploader.ErrStoreDirMismatch)
	case cfg.Priority != 0 && have.Priority != cfg.Priority:
		have.Priority = cfg.Priority
		if err := writeCacheInfo(ctx, cache, have); err != nil {
			return fmt.Errorf("setup: write nix-cache-info: %w", err)
		}
		res.step(true, "changed nix-cache-info's Priority to %d", cfg.Priority)
		return nil
	}
	res.step(false, "nix-cache-info present (StoreDir %s, Priority %d)", have.StoreDir, have.Priority)
	return nil
}

func initPolicy(ctx context.Context, admin bucketAdmin, publicRead bool, res *InitResult) error {
	policy, err := admin.BucketPolicy(ctx)
	if err != nil {
		if !publicRead && errors.Is(err, uploader.ErrAccessDenied) {
			return nil // nothing to do, and nothing to learn with these credentials
		}
		return fmt.Errorf("setup: %w", err)
	}
	if GrantsAnonymousRead(policy, admin.Bucket()) {
		res.PublicRead = true
		res.step(false, "bucket policy already lets anyone read objects")
		return nil
	}
	if !publicRead {
		return nil
	}
	merged, err := WithAnonymousRead(policy, admin.Bucket())
	if err != nil {
		return fmt.Errorf("setup: existing bucket policy: %w", err)
	}
	if err := admin.PutBucketPolicy(ctx, merged); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	res.PublicRead = true
	if strings.TrimSpace(policy) == "" {
		res.step(true, "set the bucket policy: anyone may read objects (s3:GetObject, s3:GetBucketLocation), nobody may list")
	} else {
		res.step(true, "added anonymous read (s3:GetObject, s3:GetBucketLocation) to the bucket policy, keeping its other statements")
	}
	return nil
}
