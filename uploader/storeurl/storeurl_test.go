package storeurl_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/s3"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

// deprecatedBoth is what Parse notes for endpoint=127.0.0.1:9000&scheme=http.
var deprecatedBoth = []string{
	"scheme= is deprecated by Nix 2.36: put the scheme in endpoint, e.g. endpoint=http://HOST:PORT",
	"an endpoint without a scheme is deprecated by Nix 2.36: use a full URL, endpoint=http://127.0.0.1:9000",
}

// defaults is the Spec of a URL without parameters, for the given scheme.
func defaults(scheme string) storeurl.Spec {
	return storeurl.Spec{Scheme: scheme, Format: uploader.Format{Compression: "zstd", WantMassQuery: true, Priority: 40}}
}

func TestParse(t *testing.T) {
	s3Spec := func(edit func(*storeurl.Spec)) storeurl.Spec {
		spec := defaults("s3")
		spec.S3 = s3.Config{Bucket: "nix-cache", Multipart: true}
		edit(&spec)
		return spec
	}
	fileSpec := func(dir string, edit func(*storeurl.Spec)) storeurl.Spec {
		spec := defaults("file")
		spec.Dir = dir
		edit(&spec)
		return spec
	}
	none := func(*storeurl.Spec) {}
	for _, tc := range []struct {
		raw  string
		want storeurl.Spec
	}{
		{"s3://nix-cache", s3Spec(none)},
		{"s3://nix-cache/", s3Spec(none)},
		{"s3://nix-cache?endpoint=127.0.0.1:9000&scheme=http", s3Spec(func(s *storeurl.Spec) {
			s.S3.Endpoint, s.S3.Scheme = "127.0.0.1:9000", "http"
			s.Deprecated = deprecatedBoth
		})},
		{"s3://nix-cache?endpoint=http://127.0.0.1:9000", s3Spec(func(s *storeurl.Spec) { s.S3.Endpoint = "http://127.0.0.1:9000" })},
		{"s3://nix-cache?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-central-1", s3Spec(func(s *storeurl.Spec) {
			s.S3.Endpoint, s.S3.Region = "http://127.0.0.1:9000", "eu-central-1"
		})},
		{"s3://nix-cache?region=eu-west-1&profile=ci&addressing-style=virtual&storage-class=STANDARD_IA", s3Spec(func(s *storeurl.Spec) {
			s.S3.Region, s.S3.Profile, s.S3.AddressingStyle, s.S3.StorageClass = "eu-west-1", "ci", "virtual", "STANDARD_IA"
		})},
		{"s3://nix-cache?multipart-upload=false", s3Spec(func(s *storeurl.Spec) { s.S3.Multipart = false })},
		{"s3://nix-cache?multipart-upload=true&multipart-chunk-size=16777216", s3Spec(func(s *storeurl.Spec) { s.S3.PartSize = 16 << 20 })},
		{"s3://nix-cache?multipart-chunk-size=64M", s3Spec(func(s *storeurl.Spec) { s.S3.PartSize = 64 << 20 })},
		{"s3://nix-cache?compression=xz&compression-level=9&parallel-compression=true", s3Spec(func(s *storeurl.Spec) {
			s.Format.Compression, s.Format.CompressionLevel = "xz", 9
			s.Ignored = []string{"parallel-compression"}
		})},
		{"s3://nix-cache?compression-level=19&compression=zstd", s3Spec(func(s *storeurl.Spec) { s.Format.CompressionLevel = 19 })},
		{"s3://nix-cache?compression-level=-1", s3Spec(none)},
		{"s3://nix-cache?compression=none", s3Spec(func(s *storeurl.Spec) { s.Format.Compression = "none" })},
		{"s3://nix-cache?secret-key=/etc/nix/key.sec&write-nar-listing=1&want-mass-query=false&priority=10", s3Spec(func(s *storeurl.Spec) {
			s.SecretKeyFile, s.Format.WriteNarListing, s.Format.WantMassQuery, s.Format.Priority = "/etc/nix/key.sec", true, false, 10
		})},
		{"s3://nix-cache?narinfo-compression=br&ls-compression=br&log-compression=br", s3Spec(func(s *storeurl.Spec) {
			s.Ignored = []string{"log-compression", "ls-compression", "narinfo-compression"}
		})},
		{"file:///var/cache/nix", fileSpec("/var/cache/nix", none)},
		{"file:///var/cache/nix/?compression=xz&priority=30", fileSpec("/var/cache/nix", func(s *storeurl.Spec) {
			s.Format.Compression, s.Format.Priority = "xz", 30
		})},
		{"file://localhost/srv/cache", fileSpec("/srv/cache", none)},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := storeurl.Parse(tc.raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.raw, got, tc.want)
			}
		})
	}
}

// TestParseNixURLs parses the s3:// URLs that the Nix 2.33 to 2.36 release
// notes and manual show (their object keys dropped: a store URL names a
// bucket), and checks each means for nixs3q what it means for Nix.
func TestParseNixURLs(t *testing.T) {
	s3Spec := func(bucket string, edit func(*storeurl.Spec)) storeurl.Spec {
		spec := defaults("s3")
		spec.S3 = s3.Config{Bucket: bucket, Multipart: true}
		edit(&spec)
		return spec
	}
	for _, tc := range []struct {
		source string
		raw    string
		want   storeurl.Spec
	}{
		{"manual, s3 store", "s3://example-nix-cache?profile=cache-upload&region=eu-west-2", s3Spec("example-nix-cache", func(s *storeurl.Spec) {
			s.S3.Profile, s.S3.Region = "cache-upload", "eu-west-2"
		})},
		{"manual, s3 store (2.36)", "s3://example-nix-cache?profile=cache-upload&endpoint=https://minio.example.com", s3Spec("example-nix-cache", func(s *storeurl.Spec) {
			s.S3.Profile, s.S3.Endpoint = "cache-upload", "https://minio.example.com"
		})},
		{"2.33, storage classes", "s3://my-bucket?storage-class=GLACIER", s3Spec("my-bucket", func(s *storeurl.Spec) { s.S3.StorageClass = "GLACIER" })},
		{"2.33, storage classes", "s3://my-bucket?storage-class=INTELLIGENT_TIERING", s3Spec("my-bucket", func(s *storeurl.Spec) { s.S3.StorageClass = "INTELLIGENT_TIERING" })},
		{"2.33, multipart settings", "s3://my-bucket?multipart-upload=true&multipart-threshold=104857600&multipart-chunk-size=5242880", s3Spec("my-bucket", func(s *storeurl.Spec) {
			s.S3.PartSize = 5 << 20
			s.Ignored = []string{"multipart-threshold"}
		})},
		{"2.33, buffer-size is an alias of multipart-chunk-size", "s3://my-bucket?buffer-size=16777216", s3Spec("my-bucket", func(s *storeurl.Spec) {
			s.Ignored = []string{"buffer-size"}
		})},
		{"2.34, addressing style", "s3://my-bucket?region=us-east-1&addressing-style=path", s3Spec("my-bucket", func(s *storeurl.Spec) {
			s.S3.Region, s.S3.AddressingStyle = "us-east-1", "path"
		})},
		{"2.34, narinfo-cache-meta-ttl", "s3://my-bucket?narinfo-cache-meta-ttl=3600", s3Spec("my-bucket", func(s *storeurl.Spec) {
			s.Ignored = []string{"narinfo-cache-meta-ttl"}
		})},
		{"2.35, per-store retry overrides", "s3://my-cache?retry-attempts=8", s3Spec("my-cache", func(s *storeurl.Spec) { s.S3.MaxAttempts = 8 })},
		{"2.35, all retry overrides", "s3://my-cache?retry-delay=250&retry-delay-rate-limited=10000&retry-max-delay=120000&retry-attempts=10", s3Spec("my-cache", func(s *storeurl.Spec) {
			s.S3.RetryDelay, s.S3.ThrottleDelay, s.S3.MaxBackoff, s.S3.MaxAttempts = 250*time.Millisecond, 10*time.Second, 2*time.Minute, 10
		})},
		{"2.35, 0 keeps Nix's global setting (here: the default)", "s3://my-cache?retry-attempts=0&retry-delay=0", s3Spec("my-cache", func(*storeurl.Spec) {})},
		{"2.36, endpoint as a full URL", "s3://bucket?endpoint=http://localhost:9000", s3Spec("bucket", func(s *storeurl.Spec) { s.S3.Endpoint = "http://localhost:9000" })},
		{"2.36, endpoint with a path prefix", "s3://bucket?endpoint=https://gw.example.org/storage/s3", s3Spec("bucket", func(s *storeurl.Spec) {
			s.S3.Endpoint = "https://gw.example.org/storage/s3"
		})},
		{"2.36, deprecated but accepted: bare host and scheme", "s3://bucket?endpoint=localhost:9000&scheme=http", s3Spec("bucket", func(s *storeurl.Spec) {
			s.S3.Endpoint, s.S3.Scheme = "localhost:9000", "http"
			s.Deprecated = []string{
				"scheme= is deprecated by Nix 2.36: put the scheme in endpoint, e.g. endpoint=http://HOST:PORT",
				"an endpoint without a scheme is deprecated by Nix 2.36: use a full URL, endpoint=http://localhost:9000",
			}
		})},
		{"Nix 2.32 and Lix: bare host, https", "s3://bucket?endpoint=custom.s3.com", s3Spec("bucket", func(s *storeurl.Spec) {
			s.S3.Endpoint = "custom.s3.com"
			s.Deprecated = []string{"an endpoint without a scheme is deprecated by Nix 2.36: use a full URL, endpoint=https://custom.s3.com"}
		})},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := storeurl.Parse(tc.raw)
			if err != nil {
				t.Fatalf("%s: Parse: %v", tc.source, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: Parse(%q)\n got %+v\nwant %+v", tc.source, tc.raw, got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		mention []string
	}{
		{"s3://nix-cache?regoin=eu-west-1", []string{`unknown parameter "regoin"`, "region", "endpoint", "compression"}},
		{"file:///cache?endpoint=x", []string{`"endpoint"`, "only to s3://"}},
		{"file:///cache?bogus=1", []string{`unknown parameter "bogus"`, "priority"}},
		{"s3://nix-cache?compression=br", []string{"br", "unsupported", "zstd, xz or none"}},
		{"s3://nix-cache?compression=bzip2", []string{"bzip2", "unsupported"}},
		{"s3://nix-cache?compression=rar", []string{"unknown compression"}},
		{"s3://nix-cache?compression-level=fast", []string{"compression-level", "integer"}},
		{"s3://nix-cache?compression=xz&compression-level=12", []string{"compression-level", "1 to 9"}},
		{"s3://nix-cache?compression=none&compression-level=3", []string{"takes no level"}},
		{"s3://nix-cache?compression=zstd&compression-level=23", []string{"compression-level", "1 to 22"}},
		{"s3://nix-cache?compression-level=-2", []string{"compression-level", "1 to 22"}},
		{"s3://nix-cache?parallel-compression=often", []string{"parallel-compression", "true or false"}},
		{"s3://nix-cache?priority=-3", []string{"priority"}},
		{"s3://nix-cache?scheme=ftp", []string{"scheme", "http, https"}},
		{"s3://nix-cache?addressing-style=sideways", []string{"addressing-style", "auto, path, virtual"}},
		{"s3://nix-cache?multipart-upload=maybe", []string{"multipart-upload", "true or false"}},
		{"s3://nix-cache?multipart-chunk-size=1024", []string{"multipart-chunk-size", "5M"}},
		{"s3://nix-cache?multipart-chunk-size=lots", []string{"multipart-chunk-size"}},
		{"s3://nix-cache?priority=high", []string{"priority"}},
		{"s3://nix-cache?region=a&region=b", []string{`"region" given 2 times`}},
		{"s3://nix-cache?region=", []string{"region", "empty"}},
		{"s3://nix-cache?endpoint=ftp://host", []string{"endpoint", "http or https"}},
		{"s3://nix-cache?endpoint=https://host:9000&scheme=http", []string{"contradicts"}},
		{"s3://nix-cache?endpoint=host:9000/prefix&scheme=http", []string{"full URL form"}},
		{"s3://nix-cache?endpoint=http://host/prefix?x=1", []string{"path prefix"}},
		{"s3://nix-cache?retry-attempts=-1", []string{"retry-attempts", "integer"}},
		{"s3://nix-cache?retry-attempts=4294967296", []string{"retry-attempts", "4294967295"}},
		{"s3://nix-cache?retry-delay=1.5s", []string{"retry-delay", "milliseconds"}},
		{"s3://nix-cache?retry-max-delay=", []string{"retry-max-delay"}},
		{"s3://nix-cache?retry-delay-rate-limited=soon", []string{"retry-delay-rate-limited"}},
		{"file:///cache?retry-attempts=3", []string{"retry-attempts", "only to s3://"}},
		{"s3://nix-cache?multipart-threshold=big", []string{"multipart-threshold", "size"}},
		{"s3://nix-cache?tls-certificate=/etc/c.pem&tls-private-key=/etc/k.pem", []string{"tls-", "not supported by nixs3q", "client certificates"}},
		{"s3://nix-cache?narinfo-cache-meta-ttl=-5", []string{"narinfo-cache-meta-ttl", "integer"}},
		{"s3://nix-cache?endpoint=ftp://k:secret@host", []string{"credentials"}},
		{"s3://", []string{"missing bucket"}},
		{"s3://nix-cache/prefix", []string{"path", "only a bucket"}},
		{"s3://AKIAXXX:secret@nix-cache", []string{"credentials"}},
		{"file://relative/dir", []string{"host"}},
		{"file:relative", []string{"absolute"}},
		{"https://cache.nixos.org", []string{`unsupported scheme "https"`}},
		{"/nix/store", []string{"missing scheme"}},
		{"s3://nix cache", []string{"storeurl"}},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			_, err := storeurl.Parse(tc.raw)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want an error", tc.raw)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("Parse(%q) = %q, want it to mention %q", tc.raw, err, m)
				}
			}
			if strings.Contains(err.Error(), "secret@") {
				t.Errorf("error %q leaks credentials", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"s3://bucket?region=eu-west-1", "s3://bucket?region=eu-west-1"},
		{"s3://AKIA:secret@bucket?region=x", "s3://bucket?region=x"},
		{"s3://user@bucket", "s3://bucket"},
		{"s3://AKIA:se cret@bucket/%zz", "s3://bucket/%zz"},
		{"file:///var/cache", "file:///var/cache"},
		{"s3:AKIA:secret@bucket", "s3:bucket"},
		{"s3://bucket?endpoint=http://AKIA:secret@host:9000", "s3://bucket?endpoint=http%3A%2F%2Fhost%3A9000"},
		{"s3://bucket?endpoint=AKIAEXAMPLE:SECRET@host:9000", "s3://bucket?endpoint=host%3A9000"},
		{"s3://bucket?endpoint=AKIAEXAMPLE@host", "s3://bucket?endpoint=host"},
		{"s3://bucket?endpoint=https://AKIAEXAMPLE:SECRET@host/prefix", "s3://bucket?endpoint=https%3A%2F%2Fhost%2Fprefix"},
	} {
		if got := storeurl.Redact(tc.raw); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
	// A badly escaped query hides its credentials from url.Parse; they
	// must still never come out, of Redact or of Parse's error.
	for _, raw := range []string{
		"s3://b?endpoint=http://AK:TOP%zzSECRET@host",
		"s3://b?region=x&endpoint=http://AK:TOPSECRET@host&bad=%zz",
		"s3://b?region=x&endpoint=AK:TOPSECRET@host&bad=%zz",
		"s3://b?endpoint=AK:TOPSECRET@host",
	} {
		if got := storeurl.Redact(raw); strings.Contains(got, "SECRET") || strings.Contains(got, "AK:") {
			t.Errorf("Redact(%q) = %q", raw, got)
		}
		if _, err := storeurl.Parse(raw); err == nil || strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "AK:") {
			t.Errorf("Parse(%q) error = %v", raw, err)
		}
	}
}
