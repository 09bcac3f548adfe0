package testenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Gateway is a loopback reverse proxy that serves a MinIO under a path
// prefix, as an S3 gateway mounted at https://host/PREFIX would. It
// checks each request's SigV4 signature against the URL the client used
// (prefix included), strips the prefix and signs the request again for
// MinIO. A request outside the prefix, or signed for another path, gets
// 403 and never reaches MinIO.
type Gateway struct {
	// Endpoint is http://127.0.0.1:PORT/PREFIX, without a trailing slash.
	Endpoint string
	// Forwarded counts the requests passed on to MinIO.
	Forwarded atomic.Int64
	// Refused counts the requests answered 403 by the gateway itself.
	Refused atomic.Int64
}

// StartGateway serves m under prefix (e.g. "/s3/gw") until the test ends.
func StartGateway(t testing.TB, m *MinIO, prefix string) *Gateway {
	t.Helper()
	target, err := url.Parse(m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	creds := aws.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	g := &Gateway{}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, prefix)
		pr.Out.URL.RawPath = ""
		pr.Out.Host = target.Host
		pr.Out.Header.Del("Authorization")
		when, _ := time.Parse("20060102T150405Z", pr.In.Header.Get("X-Amz-Date"))
		err := signer.SignHTTP(context.Background(), creds, pr.Out, pr.In.Header.Get("X-Amz-Content-Sha256"), "s3", m.Region, when)
		if err != nil {
			t.Errorf("testenv: gateway: sign for MinIO: %v", err)
		}
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, prefix+"/") || !validSignature(r, signer, creds, m.Region) {
			g.Refused.Add(1)
			http.Error(w, "gateway: not under "+prefix+" or bad signature", http.StatusForbidden)
			return
		}
		g.Forwarded.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.Endpoint = srv.URL + prefix
	return g
}

// validSignature recomputes the signature of r, as received, over the
// headers its Authorization says were signed, and compares.
func validSignature(r *http.Request, signer *v4.Signer, creds aws.Credentials, region string) bool {
	auth := r.Header.Get("Authorization")
	var signed, signature string
	for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "SignedHeaders":
			signed = value
		case "Signature":
			signature = value
		}
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if signature == "" || err != nil {
		return false
	}
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	check, err := http.NewRequest(r.Method, u.String(), nil)
	if err != nil {
		return false
	}
	check.ContentLength = r.ContentLength
	for _, name := range strings.Split(signed, ";") {
		if name != "host" && name != "content-length" {
			check.Header[http.CanonicalHeaderKey(name)] = r.Header.Values(name)
		}
	}
	if err := signer.SignHTTP(context.Background(), creds, check, r.Header.Get("X-Amz-Content-Sha256"), "s3", region, when); err != nil {
		return false
	}
	return strings.HasSuffix(check.Header.Get("Authorization"), "Signature="+signature)
}
