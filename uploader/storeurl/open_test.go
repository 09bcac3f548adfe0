package storeurl_test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

// roundTrip opens raw and stores and reads back one object.
func roundTrip(t *testing.T, raw string) uploader.Cache {
	t.Helper()
	spec, err := storeurl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := storeurl.Open(context.Background(), spec, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open(%s): %v", raw, err)
	}
	const body = "StoreDir: /nix/store\n"
	if err := cache.Put(context.Background(), "nix-cache-info", strings.NewReader(body), uploader.PutOptions{Size: int64(len(body))}); err != nil {
		t.Fatalf("Put via %s: %v", raw, err)
	}
	r, err := cache.Get(context.Background(), "nix-cache-info")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := io.ReadAll(r); err != nil || string(got) != body {
		t.Fatalf("read back %q, %v", got, err)
	}
	return cache
}

func TestOpenFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	cache := roundTrip(t, "file://"+dir)
	if got := cache.String(); got != "file://"+dir {
		t.Errorf("String() = %q", got)
	}
}

// TestOpenMinIO opens both endpoint spellings against a real MinIO.
func TestOpenMinIO(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "spellings", false)
	for _, kv := range append([]string{"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent", "AWS_PROFILE="}, m.Env()...) {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}
	gw := testenv.StartGateway(t, m, "/storage/s3")
	for _, raw := range []string{
		// Nix 2.36: a full URL with a path prefix, before the bucket.
		"s3://spellings?endpoint=" + gw.Endpoint + "&retry-attempts=2&retry-delay=50",
		"s3://spellings?endpoint=" + m.Host + "&scheme=http",
		"s3://spellings?endpoint=" + m.Endpoint,
		"s3://spellings?endpoint=" + m.Endpoint + "&addressing-style=path&multipart-upload=false",
	} {
		t.Run(raw, func(t *testing.T) {
			cache := roundTrip(t, raw)
			if s := cache.String(); strings.Contains(s, m.SecretKey) || strings.Contains(s, m.AccessKey) {
				t.Errorf("String() %q contains credentials", s)
			}
		})
	}
	// A multipart upload (create, parts, complete) through the prefix.
	spec, err := storeurl.Parse("s3://spellings?endpoint=" + gw.Endpoint + "&multipart-chunk-size=5M")
	if err != nil {
		t.Fatal(err)
	}
	cache, err := storeurl.Open(context.Background(), spec, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("nixs3q ", 6<<20/7+1)
	if err := cache.Put(context.Background(), "nar/big.nar", strings.NewReader(big), uploader.PutOptions{Size: int64(len(big))}); err != nil {
		t.Fatalf("multipart Put through the prefix: %v", err)
	}
	r, err := cache.Get(context.Background(), "nar/big.nar")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(got) != big {
		t.Fatalf("read back %d bytes, %v; want %d", len(got), err, len(big))
	}
	if gw.Forwarded.Load() < 2 || gw.Refused.Load() != 0 {
		t.Errorf("gateway forwarded %d and refused %d requests, want at least 2 and none", gw.Forwarded.Load(), gw.Refused.Load())
	}

	// Without the prefix, the gateway refuses: the prefix really is used.
	spec, err = storeurl.Parse("s3://spellings?endpoint=" + strings.TrimSuffix(gw.Endpoint, "/storage/s3") + "/other&retry-attempts=1")
	if err != nil {
		t.Fatal(err)
	}
	cache, err = storeurl.Open(context.Background(), spec, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.Put(context.Background(), "x", strings.NewReader("x"), uploader.PutOptions{Size: 1}); err == nil {
		t.Error("Put through the wrong prefix succeeded")
	}
	if gw.Refused.Load() == 0 {
		t.Error("the gateway refused nothing for the wrong prefix")
	}
}
