package setup

import (
	"context"
	"errors"
	"net/http"

	"github.com/nixs3q/nixs3q/uploader"
)

// checkProbes tests each permission on probe objects under this run's
// prefix, and deletes them again.
func (d *doctor) checkProbes(ctx context.Context, admin bucketAdmin) {
	bucket := admin.Bucket()
	obj := "arn:aws:s3:::" + bucket + "/*"
	key := d.probe + "probe"

	err := d.putProbe(ctx, key)
	put := err == nil
	switch {
	case put:
		d.r.ok("put", "wrote %s", key)
	case errors.Is(err, uploader.ErrAccessDenied):
		d.r.fail("put", "grant s3:PutObject on "+obj, "PutObject is denied: the daemon cannot upload anything")
	default:
		d.r.fail("put", "see the error", "PutObject failed: %v", err)
	}
	if put {
		defer d.cleanProbe(ctx, admin, key)
	}

	if !put {
		d.r.skip("get", "nothing to read: the put probe failed")
	} else if err := d.getProbe(ctx, key); err == nil {
		d.r.ok("get", "read the probe back")
	} else if errors.Is(err, uploader.ErrAccessDenied) {
		d.r.fail("get", "grant s3:GetObject on "+obj, "GetObject is denied: the daemon cannot read nix-cache-info")
	} else {
		d.r.fail("get", "see the error", "GetObject failed: %v", err)
	}

	hctx, cancel := d.op(ctx)
	if put {
		status, err := admin.HeadStatus(hctx, key)
		switch {
		case err != nil:
			d.r.fail("head", "see the error", "HeadObject failed: %v", err)
		case status == http.StatusOK:
			d.r.ok("head", "HeadObject finds the probe")
		case status == http.StatusForbidden:
			d.r.fail("head", "grant s3:GetObject on "+obj, "HeadObject is denied: the daemon cannot tell what the cache has")
		default:
			d.r.fail("head", "see the server's documentation", "HeadObject of the probe answered HTTP %d", status)
		}
	} else {
		d.r.skip("head", "nothing to look up: the put probe failed")
	}
	status, err := admin.HeadStatus(hctx, d.probe+"absent")
	cancel()
	switch {
	case err != nil:
		d.r.fail("head-missing", "see the error", "HeadObject of an absent key failed: %v", err)
	case status == http.StatusNotFound:
		d.r.ok("head-missing", "an absent key is 404")
	case status == http.StatusForbidden:
		d.r.warn("head-missing", "grant s3:ListBucket on arn:aws:s3:::"+bucket,
			"an absent key answers 403, not 404: the credentials lack s3:ListBucket, so misses look like denials")
	default:
		d.r.fail("head-missing", "see the server's documentation", "HeadObject of an absent key answered HTTP %d", status)
	}

	lctx, cancel := d.op(ctx)
	var keys []string
	err = d.cache.List(lctx, d.probe, func(o uploader.Object) error { keys = append(keys, o.Key); return nil })
	cancel()
	switch {
	case err == nil && put && !contains(keys, key):
		d.r.warn("list", "check the server's consistency settings", "ListObjectsV2 does not show the probe just written")
	case err == nil:
		d.r.ok("list", "ListObjectsV2 works")
	case errors.Is(err, uploader.ErrAccessDenied):
		d.r.warn("list", "grant s3:ListBucket on arn:aws:s3:::"+bucket, "listing is denied: 'nixs3q gc' and this doctor's narinfo sample need s3:ListBucket")
	default:
		d.r.fail("list", "see the error", "ListObjectsV2 failed: %v", err)
	}

	mctx, cancel := d.op(ctx)
	err = admin.ProbeMultipart(mctx, d.probe+"multipart")
	cancel()
	switch {
	case err == nil:
		d.r.ok("multipart", "created and aborted a multipart upload")
	case errors.Is(err, uploader.ErrAccessDenied):
		d.r.fail("multipart", "grant s3:PutObject and s3:AbortMultipartUpload on "+obj,
			"a multipart upload step is denied, so NARs larger than one part cannot be uploaded: %v", err)
	default:
		d.r.fail("multipart", "see the error; set multipart-upload=false in the store URL if the server has no multipart uploads", "%v", err)
	}
}

// cleanProbe deletes the put probe and reports whether it is gone.
func (d *doctor) cleanProbe(ctx context.Context, admin bucketAdmin, key string) {
	// Clean up even when the caller gave up.
	ctx, cancel := d.op(context.WithoutCancel(ctx))
	defer cancel()
	err := d.cache.Delete(ctx, key)
	if err != nil {
		fix := "delete " + key + " by hand, and grant s3:DeleteObject on arn:aws:s3:::" + admin.Bucket() + "/" + ProbePrefix + "*"
		if errors.Is(err, uploader.ErrAccessDenied) {
			d.r.warn("delete", fix, "DeleteObject is denied: the probe %s is left behind", key)
		} else {
			d.r.warn("delete", fix, "DeleteObject failed, the probe %s is left behind: %v", key, err)
		}
		return
	}
	if status, err := admin.HeadStatus(ctx, key); err == nil && status == http.StatusOK {
		d.r.warn("delete", "delete "+key+" by hand, and check the bucket's object lock settings", "the probe %s is still there after DeleteObject", key)
		return
	}
	d.r.ok("delete", "deleted the probe; nothing is left under %s", d.probe)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
