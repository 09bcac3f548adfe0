//go:build e2e

package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestBadCredentials: a daemon whose S3 credentials are wrong fails in a way
// an operator can act on, and publishes nothing. Either the start-up check
// of nix-cache-info refuses to start (non-zero exit, clear message), or the
// pushed path ends in the failed list with a clear error and `nixs3q wait`
// exits 1.
func TestBadCredentials(t *testing.T) {
	tests := []struct {
		name   string
		env    func(s *s3Server) []string
		reason []string // any of these, case-insensitive, must be in the message
	}{
		{
			name: "wrong secret key",
			env: func(s *s3Server) []string {
				return []string{"AWS_ACCESS_KEY_ID=" + s.accessKey, "AWS_SECRET_ACCESS_KEY=not-the-secret-key"}
			},
			reason: []string{"secret access key", "signature", "credentials"},
		},
		{
			name: "unknown access key",
			env: func(s *s3Server) []string {
				return []string{"AWS_ACCESS_KEY_ID=NOSUCHKEY0000", "AWS_SECRET_ACCESS_KEY=" + s.secretKey}
			},
			reason: []string{"access key", "credentials"},
		},
	}
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	key := n.generateKey(t, ctx, "e2e-creds-1")
	path := n.addFiles(t, ctx, newNonce(t), 1, 4096)[0]
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := []string{"e2e-creds-a", "e2e-creds-b"}[i]
			bucket := srv.bucket(t, name)
			env := append(srv.baseEnv(n), tc.env(srv)...)
			opts := newDaemonOpts(t, "s3://"+name+"?endpoint="+srv.host+"&scheme=http", key.secretFile, env)
			start := time.Now()
			d := launchDaemon(t, opts)
			err := d.waitReady(30 * time.Second)
			var msg string
			if err != nil {
				code, werr := d.waitExit(time.Second)
				if werr != nil {
					t.Fatalf("daemon neither ready nor exited: %v", err)
				}
				if code == 0 {
					t.Fatalf("daemon with bad credentials exited 0:\n%s", d.log())
				}
				msg = d.log()
				t.Logf("daemon refused to start after %s, exit %d: %s", time.Since(start).Round(time.Millisecond), code, lastLine(msg))
			} else {
				push(t, ctx, opts.socket, path)
				r := cli(t, ctx, opts.socket, "wait", "--timeout", "2m")
				if r.code != 1 {
					t.Fatalf("nixs3q wait: exit %d, want 1 (failures): %s%s", r.code, r.stdout, r.stderr)
				}
				st := status(t, ctx, opts.socket)
				if st.Failed != 1 || len(st.Failures) != 1 || st.Failures[0].Path != path {
					t.Fatalf("failed list: %+v, want exactly %s", st.Failures, path)
				}
				msg = st.Failures[0].LastError
				t.Logf("push failed after %s and %d attempt(s): %s", time.Since(start).Round(time.Millisecond), st.Failures[0].Attempts, msg)
			}
			if !containsAny(strings.ToLower(msg), tc.reason) {
				t.Errorf("the error does not say what is wrong (want one of %q):\n%s", tc.reason, msg)
			}
			if keys := bucket.list(t, ctx); len(keys) != 0 {
				t.Errorf("bad credentials, yet the bucket holds %v", keys)
			}
		})
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestPermanentFailureVisible: an upload the server refuses for good (here
// a storage class MinIO does not offer; the start-up check passes because
// nix-cache-info already exists) ends in the failed list with its reason,
// `nixs3q wait` exits 1, nothing is published, and `nixs3q retry` puts the
// path back for another attempt.
func TestPermanentFailureVisible(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-fail")
	key := n.generateKey(t, ctx, "e2e-fail-1")
	cacheInfo := "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
	if _, err := bucket.s3.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket.bucket), Key: aws.String("nix-cache-info"),
		Body: strings.NewReader(cacheInfo), ContentType: aws.String("text/x-nix-cache-info")}); err != nil {
		t.Fatal(err)
	}
	path := n.addFiles(t, ctx, newNonce(t), 1, 4096)[0]
	store := "s3://e2e-fail?endpoint=" + srv.host + "&scheme=http&storage-class=GLACIER_NO_SUCH_CLASS"
	opts := newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n))
	startDaemon(t, opts)

	for attempt := 1; attempt <= 2; attempt++ {
		start := time.Now()
		if attempt == 1 {
			push(t, ctx, opts.socket, path)
		} else {
			r := cli(t, ctx, opts.socket, "retry", path)
			if r.code != 0 || !strings.Contains(r.stdout, "moved 1 failed path(s) back to pending") {
				t.Fatalf("nixs3q retry: exit %d: %s%s", r.code, r.stdout, r.stderr)
			}
		}
		r := cli(t, ctx, opts.socket, "wait", "--timeout", "2m")
		if r.code != 1 {
			t.Fatalf("nixs3q wait: exit %d, want 1 (failures): %s%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, path) {
			t.Errorf("nixs3q wait does not name the failed path:\n%s", r.stderr)
		}
		st := status(t, ctx, opts.socket)
		if st.Failed != 1 || len(st.Failures) != 1 || st.Failures[0].Path != path {
			t.Fatalf("failed list: %+v, want exactly %s", st.Failures, path)
		}
		msg := st.Failures[0].LastError
		t.Logf("attempt round %d failed after %s, %d attempt(s): %s", attempt, time.Since(start).Round(time.Millisecond), st.Failures[0].Attempts, msg)
		if !strings.Contains(strings.ToLower(msg), "storage class") {
			t.Errorf("last_error does not say what is wrong: %s", msg)
		}
	}
	if keys := bucket.list(t, ctx); !slices.Equal(keys, []string{"nix-cache-info"}) {
		t.Errorf("the upload failed, yet the bucket holds %v", keys)
	}
}
