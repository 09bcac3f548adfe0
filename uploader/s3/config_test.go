package s3

import (
	"strings"
	"testing"
)

func TestPartSize(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name     string
		partSize int64
		hint     int64
		want     int64
	}{
		{"unknown size", 0, 0, DefaultPartSize},
		{"small object", 0, 100 * mib, DefaultPartSize},
		{"configured", 16 * mib, 0, 16 * mib},
		// 100 GiB × 1.05 / 9000 ≈ 11.9 MiB per part.
		{"large object", 0, 100 << 30, (100<<30 + 5<<30 + maxParts - 1) / maxParts},
		{"configured larger than needed", 64 * mib, 100 << 30, 64 * mib},
		{"beyond S3 limits", 0, 1 << 50, MaxPartSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Config{PartSize: tc.partSize}.withDefaults().partSize(tc.hint)
			if got != tc.want {
				t.Errorf("partSize(%d) = %d, want %d", tc.hint, got, tc.want)
			}
			if tc.hint > 0 && got < MaxPartSize {
				if parts := (tc.hint + tc.hint/20 + got - 1) / got; parts > maxParts {
					t.Errorf("%d parts for %d bytes with 5%% slack, want at most %d", parts, tc.hint, maxParts)
				}
			}
		})
	}
}

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       Config
		want      string
		pathStyle bool
		err       string
	}{
		{"aws", Config{Bucket: "b"}, "", false, ""},
		{"host with scheme", Config{Bucket: "b", Endpoint: "127.0.0.1:9000", Scheme: "http"}, "http://127.0.0.1:9000", true, ""},
		{"host defaults to https", Config{Bucket: "b", Endpoint: "s3.example.org"}, "https://s3.example.org", true, ""},
		{"full URL", Config{Bucket: "b", Endpoint: "http://127.0.0.1:9000"}, "http://127.0.0.1:9000", true, ""},
		{"full URL, trailing slash", Config{Bucket: "b", Endpoint: "https://r2.example.com/"}, "https://r2.example.com", true, ""},
		{"full URL, same scheme", Config{Bucket: "b", Endpoint: "https://h", Scheme: "https"}, "https://h", true, ""},
		{"virtual with endpoint", Config{Bucket: "b", Endpoint: "https://h", AddressingStyle: "virtual"}, "https://h", false, ""},
		{"path on aws", Config{Bucket: "b", AddressingStyle: "path"}, "", true, ""},
		{"contradicting scheme", Config{Bucket: "b", Endpoint: "https://h", Scheme: "http"}, "", false, "contradicts"},
		{"bad scheme", Config{Bucket: "b", Endpoint: "ftp://h"}, "", false, "http or https"},
		{"path prefix", Config{Bucket: "b", Endpoint: "http://h/x"}, "http://h/x", true, ""},
		{"deeper path prefix, trailing slash", Config{Bucket: "b", Endpoint: "https://gw.example.org:8443/storage/s3/"}, "https://gw.example.org:8443/storage/s3", true, ""},
		{"path prefix, virtual", Config{Bucket: "b", Endpoint: "https://h/s3", AddressingStyle: "virtual"}, "https://h/s3", false, ""},
		{"path prefix on a bare host", Config{Bucket: "b", Endpoint: "h:9000/x", Scheme: "http"}, "", false, "full URL form"},
		{"query", Config{Bucket: "b", Endpoint: "http://h/x?a=b"}, "", false, "path prefix"},
		{"escaped path", Config{Bucket: "b", Endpoint: "http://h/a%2Fb"}, "", false, "path prefix"},
		{"empty path segment", Config{Bucket: "b", Endpoint: "http://h//x"}, "", false, "path prefix"},
		{"userinfo", Config{Bucket: "b", Endpoint: "http://k:s@h"}, "", false, "credentials"},
		{"userinfo and bad scheme", Config{Bucket: "b", Endpoint: "ftp://k:s@h"}, "", false, "credentials"},
		{"userinfo and bad URL", Config{Bucket: "b", Endpoint: "http://k:s@h/%zz"}, "", false, "endpoint"},
		{"no host", Config{Bucket: "b", Endpoint: "http://"}, "", false, "no host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.endpointURL()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("endpointURL() = %q, %v; want error mentioning %q", got, err, tc.err)
				}
				if strings.Contains(err.Error(), ":s@") {
					t.Errorf("error %q leaks credentials", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("endpointURL() = %q, %v; want %q", got, err, tc.want)
			}
			if ps := tc.cfg.pathStyle(); ps != tc.pathStyle {
				t.Errorf("pathStyle() = %v, want %v", ps, tc.pathStyle)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	valid := Config{Bucket: "nix-cache"}
	if err := valid.Validate(); err != nil {
		t.Fatalf("Validate(%+v) = %v", valid, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{"no bucket", func(c *Config) { c.Bucket = "" }, "bucket name is empty"},
		{"bucket with slash", func(c *Config) { c.Bucket = "a/b" }, "invalid bucket name"},
		{"scheme", func(c *Config) { c.Scheme = "ftp" }, "scheme"},
		{"addressing", func(c *Config) { c.AddressingStyle = "dns" }, "addressing style"},
		{"part too small", func(c *Config) { c.PartSize = 1 << 20 }, "part size"},
		{"part too large", func(c *Config) { c.PartSize = 6 << 30 }, "part size"},
		{"concurrency", func(c *Config) { c.PartConcurrency = -1 }, "concurrency"},
		{"attempts", func(c *Config) { c.MaxAttempts = -1 }, "attempts"},
		{"storage class", func(c *Config) { c.StorageClass = "A B" }, "storage class"},
		{"endpoint", func(c *Config) { c.Endpoint = "gopher://x" }, "endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.edit(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Validate() = %v, want an error mentioning %q", err, tc.err)
			}
		})
	}
}
