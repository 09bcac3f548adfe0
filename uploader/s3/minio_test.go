package s3_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/cachetest"
	"github.com/nixs3q/nixs3q/uploader/s3"
)

// startMinIO starts a real MinIO and points the AWS default chain at it.
func startMinIO(t *testing.T) *testenv.MinIO {
	t.Helper()
	m := testenv.StartMinIO(t)
	isolateAWS(t)
	for _, kv := range m.Env() {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}
	return m
}

func minioConfig(m *testenv.MinIO, bucket string) s3.Config {
	cfg := testConfig(m.Endpoint)
	cfg.Bucket = bucket
	return cfg
}

func TestConformanceMinIO(t *testing.T) {
	m := startMinIO(t)
	var buckets atomic.Int32
	cachetest.Run(t, func(t *testing.T) uploader.Cache {
		name := fmt.Sprintf("conformance-%d", buckets.Add(1))
		m.CreateBucket(t, name, false)
		return newStore(t, minioConfig(m, name))
	})
}

// TestMinIOErrors classifies MinIO's real answers to the mistakes users make.
func TestMinIOErrors(t *testing.T) {
	m := startMinIO(t)
	m.CreateBucket(t, "cache", false)
	for _, tc := range []struct {
		name          string
		bucket        string
		key, secret   string
		kind          error
		wantPermanent bool
		reason        string
	}{
		{"missing bucket", "no-such-bucket", m.AccessKey, m.SecretKey, uploader.ErrNoSuchBucket, true, "bucket does not exist"},
		{"unknown access key", "cache", "AKIAUNKNOWNUNKNOWN", m.SecretKey, uploader.ErrUnknownAccessKey, true, "access key ID"},
		{"wrong secret", "cache", m.AccessKey, "wrong-secret-key", uploader.ErrSignatureMismatch, true, "secret access key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", tc.key)
			t.Setenv("AWS_SECRET_ACCESS_KEY", tc.secret)
			store := newStore(t, minioConfig(m, tc.bucket))
			err := store.Put(context.Background(), "x.narinfo", strings.NewReader("x"), uploader.PutOptions{Size: 1})
			if err == nil {
				t.Fatal("Put succeeded")
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("Put = %v, want an error matching %v", err, tc.kind)
			}
			c := uploader.Classify(err)
			if c.Permanent != tc.wantPermanent || !strings.Contains(c.Reason, tc.reason) {
				t.Errorf("Classify(%v) = %+v, want permanent=%v with a reason mentioning %q", err, c, tc.wantPermanent, tc.reason)
			}
			// The other operations report the same cause.
			err = store.List(context.Background(), "", func(uploader.Object) error { return nil })
			if !errors.Is(err, tc.kind) {
				t.Errorf("List = %v, want an error matching %v", err, tc.kind)
			}
			if err := store.Delete(context.Background(), "x.narinfo"); !errors.Is(err, tc.kind) {
				t.Errorf("Delete = %v, want an error matching %v", err, tc.kind)
			}
			if _, err := store.Get(context.Background(), "x.narinfo"); !errors.Is(err, tc.kind) {
				t.Errorf("Get = %v, want an error matching %v", err, tc.kind)
			}
		})
	}
}

// TestMinIOAnonymousRead checks what a Nix client fetching over plain HTTP
// sees: the object with the content type it was stored with, and 403 (which
// Nix reads as missing) for absent keys.
func TestMinIOAnonymousRead(t *testing.T) {
	m := startMinIO(t)
	m.CreateBucket(t, "public", true)
	store := newStore(t, minioConfig(m, "public"))
	const body = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
	err := store.Put(context.Background(), "nix-cache-info", strings.NewReader(body),
		uploader.PutOptions{Size: int64(len(body)), ContentType: "text/x-nix-cache-info"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(m.Endpoint + "/public/nix-cache-info")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(got) != body {
		t.Fatalf("anonymous GET: %s %q %v; want 200 with the object", resp.Status, got, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/x-nix-cache-info" {
		t.Errorf("Content-Type %q, want text/x-nix-cache-info", ct)
	}
	resp, err = http.Get(m.Endpoint + "/public/missing.narinfo")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
		t.Errorf("anonymous GET of a missing key: %s, want 403 or 404", resp.Status)
	}
	// The credentialed side agrees that the key is missing.
	if has, err := store.Has(context.Background(), "missing.narinfo"); has || err != nil {
		t.Errorf("Has(missing) = %v, %v", has, err)
	}
}

// TestMinIOPendingUploads starts a multipart upload whose body stalls after
// the first part, finds it with ListPending, aborts it with AbortPending,
// and checks that the Put then fails and commits nothing.
func TestMinIOPendingUploads(t *testing.T) {
	m := startMinIO(t)
	m.CreateBucket(t, "pending", false)
	store := newStore(t, minioConfig(m, "pending"))
	ctx := context.Background()

	release := make(chan struct{})
	body := io.MultiReader(
		io.LimitReader(zeroReader{}, 2*s3.MinPartSize+1),
		&stallReader{release: release},
		io.LimitReader(zeroReader{}, 1<<20),
	)
	putErr := make(chan error, 1)
	go func() {
		putErr <- store.Put(ctx, "nar/stalled.nar.zst", body, uploader.PutOptions{Size: -1, SizeHint: 64 << 20})
	}()

	var found []uploader.PendingUpload
	deadline := time.Now().Add(30 * time.Second)
	for len(found) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		found = found[:0]
		if err := store.ListPending(ctx, "nar/", func(p uploader.PendingUpload) error {
			found = append(found, p)
			return nil
		}); err != nil {
			t.Fatalf("ListPending: %v", err)
		}
	}
	if len(found) != 1 || found[0].Key != "nar/stalled.nar.zst" || found[0].ID == "" {
		t.Fatalf("ListPending = %+v, want the stalled upload of nar/stalled.nar.zst", found)
	}
	if age := time.Since(found[0].Started); age < -time.Minute || age > time.Minute {
		t.Errorf("pending upload started %v ago, want about now", age)
	}
	var other int
	if err := store.ListPending(ctx, "log/", func(uploader.PendingUpload) error { other++; return nil }); err != nil || other != 0 {
		t.Errorf("ListPending(log/) = %d, %v; want none", other, err)
	}
	if err := store.AbortPending(ctx, found[0]); err != nil {
		t.Fatalf("AbortPending: %v", err)
	}
	if err := store.AbortPending(ctx, found[0]); err != nil {
		t.Errorf("second AbortPending = %v, want nil for an upload that is gone", err)
	}
	close(release)
	if err := <-putErr; err == nil {
		t.Fatal("Put of an aborted multipart upload succeeded")
	}
	if ok, err := store.Has(ctx, "nar/stalled.nar.zst"); ok || err != nil {
		t.Fatalf("Has after the aborted upload = %v, %v; want false, nil", ok, err)
	}
	var left int
	if err := store.ListPending(ctx, "", func(uploader.PendingUpload) error { left++; return nil }); err != nil || left != 0 {
		t.Fatalf("ListPending after abort = %d, %v; want none", left, err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// stallReader blocks its first Read until release is closed, then ends.
type stallReader struct{ release chan struct{} }

func (r *stallReader) Read([]byte) (int, error) {
	<-r.release
	return 0, io.EOF
}

// ListTop lists the keys at the top of the bucket under a prefix, not those
// under "nar/", with MinIO's real delimiter handling, across pages.
func TestMinIOListTop(t *testing.T) {
	m := startMinIO(t)
	m.CreateBucket(t, "top", false)
	store := newStore(t, minioConfig(m, "top"))
	ctx := context.Background()
	var want []string
	for i := range 1005 { // more than one page
		key := fmt.Sprintf("n%05d.narinfo", i)
		want = append(want, key)
		if err := store.Put(ctx, key, strings.NewReader("x"), uploader.PutOptions{Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"nar/abc.nar.zst", "nix-cache-info", "a.narinfo"} {
		if err := store.Put(ctx, key, strings.NewReader("x"), uploader.PutOptions{Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := store.ListTop(ctx, "n", func(o uploader.Object) error { got = append(got, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	want = append(want, "nix-cache-info")
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ListTop(n) listed %d keys (%v ... %v), want %d without nar/", len(got), got[:min(3, len(got))], got[max(0, len(got)-3):], len(want))
	}
}
