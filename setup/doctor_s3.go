package setup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/s3"
)

// checkS3 runs the bucket's checks in order, stopping where a failure makes
// the rest meaningless (no credentials, no endpoint, no bucket).
func (d *doctor) checkS3(ctx context.Context) {
	// Two attempts per request: a transient error gets one retry, and a
	// dead endpoint does not hold doctor up for a minute per check.
	cache, admin, err := d.openS3(ctx, d.spec, 2, d.log)
	if err != nil {
		d.r.fail("store-url", "fix the store URL or the AWS configuration", "%v", err)
		return
	}
	d.cache = cache
	if !d.checkCredentials(ctx, admin) {
		return
	}
	info, ok := d.checkEndpoint(ctx, admin)
	if !ok {
		return
	}
	d.checkClock(info)
	if !d.checkBucket(ctx, admin, info) {
		return
	}
	d.checkProbes(ctx, admin)
	d.checkCacheInfo(ctx)
	rules := d.checkLifecycle(ctx, admin, info)
	d.checkVersioning(ctx, admin, rules)
	d.sample = func(ctx context.Context) (string, error) { return firstNarInfo(ctx, cache) }
}

func (d *doctor) checkCredentials(ctx context.Context, admin bucketAdmin) bool {
	ctx, cancel := d.op(ctx)
	defer cancel()
	source, id, err := admin.Credentials(ctx)
	if err != nil {
		d.r.fail("credentials", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile= with credentials in ~/.aws, or give the machine a role",
			"the AWS credential chain found no credentials: %v", err)
		return false
	}
	if source == "" {
		source = "an unnamed source"
	}
	d.r.ok("credentials", "access key %s from %s", id, source)
	return true
}

func (d *doctor) checkEndpoint(ctx context.Context, admin bucketAdmin) (s3.ServerInfo, bool) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	info, err := admin.Ping(ctx)
	if err != nil {
		switch {
		case isTLSError(err):
			d.r.fail("endpoint", "give the server a certificate this machine trusts, or fix endpoint= (http:// or https://)",
				"TLS with the endpoint failed: %v", err)
		default:
			d.r.fail("endpoint", "check endpoint= (host and port) and that the server is running and reachable from here",
				"no answer from the endpoint: %v", err)
		}
		return info, false
	}
	server := info.Server
	if server == "" {
		server = "an S3 server"
	}
	transport := "over HTTPS"
	if !info.TLS {
		transport = "over plain HTTP"
	}
	d.r.ok("endpoint", "%s answered %s", server, transport)
	return info, true
}

func (d *doctor) checkClock(info s3.ServerInfo) {
	if info.Date.IsZero() {
		d.r.skip("clock", "the server sent no Date header")
		return
	}
	skew := time.Since(info.Date)
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	// Date has a resolution of one second.
	abs = max(abs-time.Second, 0)
	switch {
	case abs > maxClockSkew:
		d.r.fail("clock", "synchronise this machine's clock (NTP, e.g. systemd-timesyncd)",
			"this clock is %s off the server's, beyond the 15 minutes S3 signatures allow", skew.Round(time.Second))
	case abs > warnClockSkew:
		d.r.warn("clock", "synchronise this machine's clock (NTP, e.g. systemd-timesyncd)",
			"this clock is %s off the server's (S3 refuses requests beyond 15 minutes)", skew.Round(time.Second))
	default:
		d.r.ok("clock", "within %s of the server's", max(abs, time.Second))
	}
}

// checkBucket checks that the server accepts the credentials and that the
// bucket exists in the region requests are signed for.
func (d *doctor) checkBucket(ctx context.Context, admin bucketAdmin, info s3.ServerInfo) bool {
	ctx, cancel := d.op(ctx)
	defer cancel()
	bucket := admin.Bucket()
	loc, err := admin.BucketLocation(ctx)
	switch {
	case err == nil:
		d.r.ok("auth", "the server accepts the credentials")
		d.r.ok("bucket", "%s exists", bucket)
		d.checkRegion(admin, loc)
		return true
	case errors.Is(err, uploader.ErrUnknownAccessKey):
		d.r.fail("auth", "fix AWS_ACCESS_KEY_ID (or the profile's aws_access_key_id)", "the server does not know the access key ID")
		return false
	case errors.Is(err, uploader.ErrSignatureMismatch):
		d.r.fail("auth", "fix AWS_SECRET_ACCESS_KEY (or the profile's aws_secret_access_key)", "the secret access key does not match the access key ID")
		return false
	case errors.Is(err, uploader.ErrClockSkew):
		d.r.fail("auth", "synchronise this machine's clock (NTP)", "the server refuses the requests' time: %v", err)
		return false
	case errors.Is(err, uploader.ErrNoSuchBucket):
		d.r.ok("auth", "the server accepts the credentials")
		d.r.fail("bucket", "run 'nixs3q init' to create it, or fix the bucket name in the store URL", "bucket %s does not exist", bucket)
		return false
	case errors.Is(err, uploader.ErrWrongRegion):
		d.r.ok("auth", "the server accepts the credentials")
		d.r.ok("bucket", "%s exists", bucket)
		where := "another region"
		if info.BucketRegion != "" {
			where = info.BucketRegion
		}
		d.r.fail("region", "set region="+strings.ReplaceAll(where, " ", "-")+" in the store URL", "the bucket is in %s, requests are signed for %s", where, admin.Region())
		return false
	case errors.Is(err, uploader.ErrAccessDenied):
		// Denied GetBucketLocation: the signature was accepted. Whether the
		// bucket exists shows in HeadBucket's status.
		d.r.ok("auth", "the server accepts the credentials")
		switch info.Status {
		case http.StatusOK:
			d.r.ok("bucket", "%s exists", bucket)
			if info.BucketRegion != "" {
				d.checkRegion(admin, info.BucketRegion)
			} else {
				d.r.warn("region", "grant s3:GetBucketLocation on arn:aws:s3:::"+bucket+" (the printed writer policy has it)",
					"cannot check the bucket's region: GetBucketLocation is denied")
			}
			return true
		case http.StatusNotFound:
			d.r.fail("bucket", "run 'nixs3q init' to create it, or fix the bucket name in the store URL", "bucket %s does not exist", bucket)
			return false
		}
		d.r.fail("bucket", "check the bucket name in the store URL; if it is right, grant these credentials the writer policy 'nixs3q init' prints",
			"bucket %s does not exist or these credentials may not use it (access denied)", bucket)
		return false
	default:
		d.r.fail("bucket", "see the error; check the endpoint and the bucket name", "bucket %s: %v", bucket, err)
		return false
	}
}

func (d *doctor) checkRegion(admin bucketAdmin, loc string) {
	if loc == admin.Region() {
		d.r.ok("region", "%s", loc)
		return
	}
	d.r.fail("region", "set region="+loc+" in the store URL", "the bucket is in %s, requests are signed for %s", loc, admin.Region())
}

// checkLifecycle warns about rules that expire objects by age, which break
// closures, and about a missing rule for abandoned multipart uploads. It
// returns the rules for checkVersioning.
func (d *doctor) checkLifecycle(ctx context.Context, admin bucketAdmin, info s3.ServerInfo) []s3.LifecycleRule {
	ctx, cancel := d.op(ctx)
	defer cancel()
	rules, err := admin.Lifecycle(ctx)
	if err != nil {
		switch {
		case errors.Is(err, uploader.ErrAccessDenied):
			fix := "grant s3:GetLifecycleConfiguration on arn:aws:s3:::" + admin.Bucket() + " (the printed writer policy has it), or check the rules by hand"
			d.r.warn("lifecycle-expiry", fix, "cannot read the lifecycle rules: access denied")
		case errors.Is(err, uploader.ErrNotSupported):
			d.r.skip("lifecycle-expiry", "the server has no lifecycle rules")
		default:
			d.r.fail("lifecycle-expiry", "see the error", "reading the lifecycle rules failed: %v", err)
		}
		return nil
	}
	var expiring []string
	abort := false
	for _, r := range rules {
		if !r.Enabled {
			continue
		}
		if r.AbortIncompleteDays > 0 {
			abort = true
		}
		if r.ExpirationDays == 0 && r.ExpirationDate.IsZero() || !coversCache(r.Prefix) {
			continue
		}
		name := r.ID
		if name == "" {
			name = "(unnamed)"
		}
		if r.ExpirationDays > 0 {
			expiring = append(expiring, fmt.Sprintf("%s expires objects %d days after upload", name, r.ExpirationDays))
		} else {
			expiring = append(expiring, fmt.Sprintf("%s expires objects on %s", name, r.ExpirationDate.Format(time.DateOnly)))
		}
	}
	if len(expiring) > 0 {
		d.r.warn("lifecycle-expiry", "remove the expiration rule and prune with 'nixs3q gc', which keeps closures whole",
			"%s: references expire before the paths that need them, so clients find narinfos whose closure is gone",
			strings.Join(expiring, "; "))
	} else {
		d.r.ok("lifecycle-expiry", "no rule expires cache objects by age")
	}
	switch {
	case abort:
		d.r.ok("lifecycle-multipart", "a rule aborts incomplete multipart uploads")
	case strings.EqualFold(info.Server, "MinIO"):
		d.r.ok("lifecycle-multipart", "MinIO removes abandoned multipart uploads itself")
	default:
		d.r.warn("lifecycle-multipart", "add a lifecycle rule with AbortIncompleteMultipartUpload (DaysAfterInitiation 7)",
			"no rule aborts incomplete multipart uploads: the parts of interrupted uploads are billed until then")
	}
	return rules
}

// coversCache reports whether a rule with this key prefix can apply to
// narinfos or NARs: rules limited to another directory (logs/, tmp/) cannot.
func coversCache(prefix string) bool {
	return !strings.Contains(prefix, "/") || strings.HasPrefix(prefix, "nar/") || strings.HasPrefix("nar/", prefix)
}

func (d *doctor) checkVersioning(ctx context.Context, admin bucketAdmin, rules []s3.LifecycleRule) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	state, err := admin.Versioning(ctx)
	if err != nil {
		switch {
		case errors.Is(err, uploader.ErrAccessDenied):
			d.r.warn("versioning", "grant s3:GetBucketVersioning on arn:aws:s3:::"+admin.Bucket()+" (the printed writer policy has it), or check by hand",
				"cannot read the versioning state: access denied")
		case errors.Is(err, uploader.ErrNotSupported):
			d.r.skip("versioning", "the server has no versioning")
		default:
			d.r.fail("versioning", "see the error", "reading the versioning state failed: %v", err)
		}
		return
	}
	if state != "Enabled" {
		if state == "" {
			state = "never enabled"
		}
		d.r.ok("versioning", "off (%s)", strings.ToLower(state))
		return
	}
	for _, r := range rules {
		if r.Enabled && r.NoncurrentDays > 0 && r.Prefix == "" {
			d.r.ok("versioning", "on; rule %s expires noncurrent versions after %d days", r.ID, r.NoncurrentDays)
			return
		}
	}
	d.r.warn("versioning", "add a lifecycle rule with NoncurrentVersionExpiration, or suspend versioning",
		"on: deleted and replaced objects keep costing storage as noncurrent versions, forever")
}
