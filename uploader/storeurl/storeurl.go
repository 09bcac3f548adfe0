package storeurl

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/local"
	"github.com/nixs3q/nixs3q/uploader/s3"
)

// Spec is a parsed store URL: the backend's configuration (where the cache
// is) and the Format (how to write it).
type Spec struct {
	// Scheme is "s3" or "file".
	Scheme string
	// S3 is the bucket configuration when Scheme is "s3", validated.
	S3 s3.Config
	// Dir is the cache directory when Scheme is "file", the whole
	// configuration of the local backend: absolute and clean.
	Dir string

	// Format is compression, compression-level (Nix's -1 is accepted and
	// means the compressor's default, 0), write-nar-listing,
	// want-mass-query and priority, starting from uploader.DefaultFormat
	// (zstd, where Nix defaults to xz). It is validated.
	Format uploader.Format
	// SecretKeyFile is the path of the signing key ("secret-key"), or "".
	SecretKeyFile string

	// Ignored lists the parameters of the URL that Nix knows but that do not
	// apply to nixs3q, for the caller to log.
	Ignored []string
	// Deprecated holds a note for each spelling the URL uses that Nix 2.36
	// deprecates but that still works (scheme=, a bare host endpoint), for
	// the caller to log.
	Deprecated []string
}

// param is one known store URL parameter.
type param struct {
	s3Only bool
	apply  func(spec *Spec, value string) error
}

// knownParams are the parameters nixs3q understands, with Nix's names and
// meanings.
func knownParams() map[string]param {
	return map[string]param{
		"region":               {s3Only: true, apply: func(s *Spec, v string) error { s.S3.Region = v; return nonEmpty(v) }},
		"endpoint":             {s3Only: true, apply: func(s *Spec, v string) error { s.S3.Endpoint = v; return nonEmpty(v) }},
		"profile":              {s3Only: true, apply: func(s *Spec, v string) error { s.S3.Profile = v; return nonEmpty(v) }},
		"scheme":               {s3Only: true, apply: func(s *Spec, v string) error { s.S3.Scheme = v; return oneOf(v, "http", "https") }},
		"addressing-style":     {s3Only: true, apply: func(s *Spec, v string) error { s.S3.AddressingStyle = v; return oneOf(v, "auto", "path", "virtual") }},
		"storage-class":        {s3Only: true, apply: func(s *Spec, v string) error { s.S3.StorageClass = v; return nonEmpty(v) }},
		"multipart-upload":     {s3Only: true, apply: func(s *Spec, v string) (err error) { s.S3.Multipart, err = parseBool(v); return err }},
		"multipart-chunk-size": {s3Only: true, apply: applyChunkSize},
		"multipart-threshold":  {s3Only: true, apply: ignoreSize("multipart-threshold")},
		// Nix 2.35's per-store overrides of the filetransfer-retry-*
		// settings, in milliseconds and attempts; 0 keeps the default.
		"retry-attempts":           {s3Only: true, apply: applyRetryAttempts},
		"retry-delay":              {s3Only: true, apply: applyMillis(func(s *Spec) *time.Duration { return &s.S3.RetryDelay })},
		"retry-delay-rate-limited": {s3Only: true, apply: applyMillis(func(s *Spec) *time.Duration { return &s.S3.ThrottleDelay })},
		"retry-max-delay":          {s3Only: true, apply: applyMillis(func(s *Spec) *time.Duration { return &s.S3.MaxBackoff })},
		"narinfo-cache-meta-ttl":   {apply: ignoreUint("narinfo-cache-meta-ttl")},
		"compression":              {apply: applyCompression},
		"compression-level":        {apply: applyCompressionLevel},
		"parallel-compression":     {apply: applyParallelCompression},
		"write-nar-listing":        {apply: func(s *Spec, v string) (err error) { s.Format.WriteNarListing, err = parseBool(v); return err }},
		"want-mass-query":          {apply: func(s *Spec, v string) (err error) { s.Format.WantMassQuery, err = parseBool(v); return err }},
		"priority":                 {apply: applyPriority},
		"secret-key":               {apply: func(s *Spec, v string) error { s.SecretKeyFile = v; return nonEmpty(v) }},
	}
}

// isIgnoredParam reports parameters Nix accepts for binary caches that
// change nothing about what nixs3q writes. (parallel-compression is ignored
// too, after its value is checked: see applyParallelCompression.)
func isIgnoredParam(name string) bool {
	switch name {
	case "buffer-size", "index-debug-info", "local-nar-cache", "log-compression",
		"ls-compression", "narinfo-compression",
		"path-info-cache-size", "system-features", "trusted":
		return true
	}
	return false
}

// unsupportedParams are parameters Nix defines whose effect nixs3q does not
// have and cannot drop without changing what the user asked for, so they
// are errors rather than warnings.
var unsupportedParams = map[string]string{
	"tls-certificate": "TLS client certificates (Nix 2.34) are not implemented; the server would see requests without one",
	"tls-private-key": "TLS client certificates (Nix 2.34) are not implemented; the server would see requests without one",
}

// Parse reads a store URL as Nix users write it:
//
//	s3://BUCKET?region=&endpoint=&profile=&scheme=&addressing-style=&...
//	file:///ABSOLUTE/DIR?compression=&priority=&...
//
// Parameters keep Nix's names and meanings; unknown parameters, repeated
// ones, bad values and parameters of the wrong scheme are errors naming
// them. Unlike Nix, compression defaults to zstd, and multipart uploads are
// on by default because NARs are streamed.
func Parse(raw string) (Spec, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Spec{}, fmt.Errorf("storeurl: %s: %w", Redact(raw), errors.Unwrap(err))
	}
	spec := Spec{Scheme: u.Scheme, Format: uploader.DefaultFormat()}
	switch u.Scheme {
	case "s3":
		err = parseS3(&spec, u)
	case "file":
		err = parseFile(&spec, u)
	case "":
		err = errors.New("missing scheme: want s3://BUCKET or file:///DIR")
	default:
		err = fmt.Errorf("unsupported scheme %q: want s3://BUCKET or file:///DIR", u.Scheme)
	}
	if err == nil {
		err = applyParams(&spec, u)
	}
	if err == nil && spec.Scheme == "s3" {
		err = spec.S3.Validate()
		if spec.S3.Scheme != "" {
			spec.Deprecated = append(spec.Deprecated, "scheme= is deprecated by Nix 2.36: put the scheme in endpoint, e.g. endpoint=http://HOST:PORT")
		}
		if e := spec.S3.Endpoint; e != "" && !strings.Contains(e, "://") {
			spec.Deprecated = append(spec.Deprecated, "an endpoint without a scheme is deprecated by Nix 2.36: use a full URL, endpoint="+cmp.Or(spec.S3.Scheme, "https")+"://"+e)
		}
	}
	if err != nil {
		return Spec{}, fmt.Errorf("storeurl: %s: %w", Redact(raw), err)
	}
	return spec, nil
}

func parseS3(spec *Spec, u *url.URL) error {
	switch {
	case u.User != nil:
		return errors.New("credentials do not belong in the store URL: use the AWS environment, shared config or profile=")
	case u.Opaque != "":
		return errors.New("want s3://BUCKET")
	case u.Host == "":
		return errors.New("missing bucket name: want s3://BUCKET")
	case u.Path != "" && u.Path != "/":
		return fmt.Errorf("unexpected path %q: s3 store URLs name only a bucket", u.Path)
	case u.Fragment != "":
		return errors.New("unexpected fragment")
	}
	spec.S3 = s3.Config{Bucket: u.Host, Multipart: true}
	return nil
}

func parseFile(spec *Spec, u *url.URL) error {
	switch {
	case u.User != nil || (u.Host != "" && u.Host != "localhost"):
		return fmt.Errorf("unexpected host %q: want file:///ABSOLUTE/DIR", u.Host)
	case u.Opaque != "" || !strings.HasPrefix(u.Path, "/"):
		return errors.New("want an absolute directory: file:///ABSOLUTE/DIR")
	case u.Fragment != "":
		return errors.New("unexpected fragment")
	}
	spec.Dir = filepath.Clean(u.Path)
	return nil
}

func applyParams(spec *Spec, u *url.URL) error {
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	names := make([]string, 0, len(query))
	for name := range query {
		names = append(names, name)
	}
	slices.Sort(names)
	known := knownParams()
	for _, name := range names {
		values := query[name]
		if len(values) > 1 {
			return fmt.Errorf("parameter %q given %d times", name, len(values))
		}
		if isIgnoredParam(name) {
			spec.Ignored = append(spec.Ignored, name)
			continue
		}
		if why, ok := unsupportedParams[name]; ok {
			return fmt.Errorf("parameter %q is not supported by nixs3q: %s", name, why)
		}
		p, ok := known[name]
		switch {
		case !ok:
			return fmt.Errorf("unknown parameter %q; known parameters: %s", name, paramList(known, spec.Scheme))
		case p.s3Only && spec.Scheme != "s3":
			return fmt.Errorf("parameter %q applies only to s3:// stores", name)
		}
		if err := p.apply(spec, values[0]); err != nil {
			return fmt.Errorf("parameter %s=%q: %w", name, values[0], err)
		}
	}
	return nil
}

func paramList(known map[string]param, scheme string) string {
	var names []string
	for name, p := range known {
		if !p.s3Only || scheme == "s3" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Open returns the cache the spec names. For S3 it loads the AWS
// configuration but sends no request; for a directory it creates it.
func Open(ctx context.Context, spec Spec, log *zap.Logger) (uploader.Cache, error) {
	switch spec.Scheme {
	case "s3":
		store, err := s3.New(ctx, spec.S3, log)
		if err != nil {
			return nil, fmt.Errorf("storeurl: %w", err)
		}
		return store, nil
	case "file":
		store, err := local.New(spec.Dir)
		if err != nil {
			return nil, fmt.Errorf("storeurl: %w", err)
		}
		return store, nil
	}
	return nil, fmt.Errorf("storeurl: unsupported scheme %q", spec.Scheme)
}

// Redact returns raw without its userinfo (anything up to an "@" in the
// authority), nor that of an endpoint parameter, safe to log, also when raw
// does not parse as a URL.
func Redact(raw string) string {
	return userinfo.ReplaceAllString(redact(raw), "$1")
}

// userinfo matches what looks like credentials before an '@' anywhere in a
// URL, also in parts url.Parse could not make sense of (a badly escaped
// query, say), so that Redact removes them whatever the URL's shape.
var userinfo = regexp.MustCompile(`(//|=|^)[^/?#&=@]*@`)

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err == nil {
		u.User = nil
		if i := strings.LastIndex(u.Opaque, "@"); i >= 0 {
			u.Opaque = u.Opaque[i+1:]
		}
		if q := u.Query(); strings.Contains(q.Get("endpoint"), "@") {
			// Not url.Parse: "AKIA:SECRET@host" parses as scheme "AKIA".
			q.Set("endpoint", stripUserinfo(q.Get("endpoint")))
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return stripUserinfo(raw)
}

// stripUserinfo removes everything up to the last '@' of raw's authority
// (of the whole of raw when it has no "://"), without parsing it.
func stripUserinfo(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw[strings.LastIndex(raw, "@")+1:]
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	return scheme + "://" + authority + tail
}
