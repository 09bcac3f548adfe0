package storeurl_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/s3"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

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
		{"s3://nix-cache?endpoint=http://host/prefix", []string{"only scheme, host and port"}},
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
