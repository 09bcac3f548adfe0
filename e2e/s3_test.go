//go:build e2e

package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestS3HostEndpoint: the endpoint spelled as Nix ≤ 2.32 users write it
// (host plus scheme=http). The full closure, with a 20 MiB path that goes up
// as a multipart upload, is built with the hook, uploaded with zstd, and
// substituted by Nix into a fresh store.
func TestS3HostEndpoint(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-host")
	key := n.generateKey(t, ctx, "e2e-host-1")
	store := "s3://e2e-host?endpoint=" + srv.host + "&scheme=http&region=us-east-1"
	d := startDaemon(t, newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n)))

	res := buildAndPublish(t, ctx, n, d, bucket, key, "withBig")
	if len(res.closure) != 6 {
		t.Fatalf("closure of 'withBig' has %d paths, want 6 (a, b, c, multi, multi-dev, big): %v", len(res.closure), res.closure)
	}
	multipart := 0
	for p, ni := range res.cache.narinfos {
		if ni.Compression != "zstd" {
			t.Errorf("%s: Compression %q, want the default zstd", p, ni.Compression)
		}
		if strings.HasSuffix(p, "-e2e-big") {
			// S3 gives multipart objects an ETag ending in "-<parts>".
			head, err := bucket.s3.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket.bucket), Key: aws.String(ni.URL)})
			if err != nil {
				t.Fatalf("HEAD %s: %v", ni.URL, err)
			}
			if etag := aws.ToString(head.ETag); !strings.Contains(etag, "-") {
				t.Errorf("%s: NAR of %d bytes has ETag %s: not a multipart upload", p, ni.FileSize, etag)
			} else {
				t.Logf("%s: %d-byte NAR uploaded in parts (ETag %s)", filepath.Base(p), ni.FileSize, etag)
			}
			multipart++
		}
	}
	if multipart != 1 {
		t.Errorf("the big path is not in the cache")
	}
	st := status(t, ctx, d.opts.socket)
	if st.Uploaded != int64(len(res.closure)) {
		t.Errorf("status uploaded = %d, want each of the %d closure paths uploaded exactly once", st.Uploaded, len(res.closure))
	}
	substituteAndCompare(t, ctx, n, bucket, key, res)
}

// TestS3URLEndpoint: the endpoint spelled as a full URL (Nix ≥ 2.33), with
// xz compression and a smaller closure.
func TestS3URLEndpoint(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-url")
	key := n.generateKey(t, ctx, "e2e-url-1")
	store := "s3://e2e-url?endpoint=http://" + srv.host
	opts := newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n))
	opts.flags = []string{"--compression", "xz"}
	d := startDaemon(t, opts)

	res := buildAndPublish(t, ctx, n, d, bucket, key, "small")
	if len(res.closure) != 2 {
		t.Fatalf("closure of 'small' has %d paths, want 2 (b, c): %v", len(res.closure), res.closure)
	}
	for p, ni := range res.cache.narinfos {
		if ni.Compression != "xz" {
			t.Errorf("%s: Compression %q, want xz", p, ni.Compression)
		}
	}
	substituteAndCompare(t, ctx, n, bucket, key, res)
}

// TestDedup: paths already in the cache are not uploaded again, neither by
// the daemon that uploaded them (presence cache) nor by a new daemon with an
// empty state directory (which must ask the bucket).
func TestDedup(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-dedup")
	key := n.generateKey(t, ctx, "e2e-dedup-1")
	store := "s3://e2e-dedup?endpoint=" + srv.host + "&scheme=http&region=us-east-1"
	d := startDaemon(t, newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n)))
	res := buildAndPublish(t, ctx, n, d, bucket, key, "all")
	before := status(t, ctx, d.opts.socket)
	keysBefore := bucket.list(t, ctx)

	// Again through the same daemon: push every path, and the hook as if
	// Nix had built the roots once more.
	done := timed(t, "re-push to the same daemon")
	push(t, ctx, d.opts.socket, res.closure...)
	if r := runHook(t, d.opts.socket, d.opts.stateDir, res.roots); r.stderr != "" {
		t.Fatalf("hook with the daemon up printed %q", r.stderr)
	}
	waitDrained(t, ctx, d.opts.socket, time.Minute)
	done()
	after := status(t, ctx, d.opts.socket)
	if after.Uploaded != before.Uploaded || after.UploadedBytes != before.UploadedBytes {
		t.Errorf("re-push uploaded again: uploaded %d -> %d, bytes %d -> %d", before.Uploaded, after.Uploaded, before.UploadedBytes, after.UploadedBytes)
	}
	if after.Skipped <= before.Skipped {
		t.Errorf("re-push did not count skipped paths: skipped %d -> %d", before.Skipped, after.Skipped)
	}
	if after.Failed != 0 {
		t.Errorf("failures after re-push: %+v", after.Failures)
	}
	if keys := bucket.list(t, ctx); !slices.Equal(keys, keysBefore) {
		t.Errorf("bucket changed on re-push: %d objects -> %d", len(keysBefore), len(keys))
	}
	t.Logf("same daemon: uploaded %d -> %d, skipped %d -> %d, %d objects unchanged", before.Uploaded, after.Uploaded, before.Skipped, after.Skipped, len(keysBefore))

	// A new daemon with a new state directory knows nothing: it must find
	// every path in the bucket.
	d.stop()
	done = timed(t, "push to a fresh daemon")
	d2 := startDaemon(t, newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n)))
	push(t, ctx, d2.opts.socket, res.roots...)
	waitDrained(t, ctx, d2.opts.socket, time.Minute)
	done()
	fresh := status(t, ctx, d2.opts.socket)
	if fresh.Uploaded != 0 || fresh.UploadedBytes != 0 {
		t.Errorf("fresh daemon uploaded %d paths (%d bytes) already in the bucket", fresh.Uploaded, fresh.UploadedBytes)
	}
	if fresh.Skipped < int64(len(res.roots)) {
		t.Errorf("fresh daemon skipped %d paths, want at least the %d roots", fresh.Skipped, len(res.roots))
	}
	// The only new objects are the roots' re-assertion records (gc keeps
	// the closures of roots pushed again): the fresh daemon found each root
	// in the cache without having published it.
	keys := bucket.list(t, ctx)
	var added []string
	for _, k := range keys {
		if !slices.Contains(keysBefore, k) {
			added = append(added, k)
		}
	}
	for _, k := range keysBefore {
		if !slices.Contains(keys, k) {
			t.Errorf("push to a fresh daemon removed %s", k)
		}
	}
	wantAdded := make(map[string]bool)
	for _, r := range res.roots {
		wantAdded[strings.SplitN(filepath.Base(r), "-", 2)[0]] = true
	}
	for _, k := range added {
		hash := k[strings.LastIndexByte(k, '/')+1:]
		if !strings.HasPrefix(k, "nixs3q/roots/") || !wantAdded[hash] {
			t.Errorf("push to a fresh daemon wrote %s, want only root records nixs3q/roots/<day>/<hash> of the pushed roots", k)
		}
		delete(wantAdded, hash)
	}
	if len(wantAdded) != 0 {
		t.Errorf("push to a fresh daemon wrote no re-assertion record for %d of the roots (added %v)", len(wantAdded), added)
	}
	t.Logf("fresh daemon: uploaded %d, skipped %d, %d objects unchanged, %d root records added", fresh.Uploaded, fresh.Skipped, len(keysBefore), len(added))
}
