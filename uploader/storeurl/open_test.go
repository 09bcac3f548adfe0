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
	for _, raw := range []string{
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
}
