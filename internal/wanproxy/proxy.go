package wanproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultBurst      = 64 << 10
	DefaultRetryAfter = time.Second
	// chunk is the most bytes moved per token-bucket take, so that
	// concurrent transfers interleave finely.
	chunk = 16 << 10
)

// Config describes the simulated network.
type Config struct {
	// Upstream is the base URL of the server behind the proxy, such as
	// "http://127.0.0.1:9000". Required; its host must be a loopback address.
	Upstream string
	// Latency is added to every request (one round trip); 0 adds none.
	Latency time.Duration
	// Bandwidth caps the bytes of request and response bodies, both
	// directions together, in bits per second; 0 is unlimited.
	Bandwidth int64
	// Burst is the token bucket's size in bytes; 0 means DefaultBurst.
	Burst int
	// Throttle is the fraction of requests, in [0, 1), answered with
	// 503 SlowDown instead of being forwarded.
	Throttle float64
	// RetryAfter is the Retry-After sent with throttled requests, in whole
	// seconds (rounded up); 0 means DefaultRetryAfter.
	RetryAfter time.Duration
	// Seed seeds the choice of throttled requests.
	Seed uint64
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	u, err := url.Parse(c.Upstream)
	switch {
	case err != nil:
		return fmt.Errorf("wanproxy: upstream: %w", err)
	case u.Scheme != "http" || u.Host == "":
		return fmt.Errorf("wanproxy: upstream %q: want http://HOST:PORT", c.Upstream)
	case c.Latency < 0:
		return errors.New("wanproxy: negative latency")
	case c.Bandwidth < 0:
		return errors.New("wanproxy: negative bandwidth")
	case c.Burst < 0:
		return errors.New("wanproxy: negative burst")
	case c.Throttle < 0 || c.Throttle >= 1 || math.IsNaN(c.Throttle):
		return fmt.Errorf("wanproxy: throttle fraction %v: want 0 <= f < 1", c.Throttle)
	case c.RetryAfter < 0:
		return errors.New("wanproxy: negative Retry-After")
	}
	if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
		return fmt.Errorf("wanproxy: upstream %q is not a loopback address", c.Upstream)
	}
	return nil
}

// Stats counts what the proxy did.
type Stats struct {
	Requests  int64 // requests received
	Throttled int64 // of which answered 503 SlowDown
	BytesUp   int64 // request body bytes forwarded
	BytesDown int64 // response body bytes returned
}

// Proxy is the simulated network in front of one upstream server. It is an
// http.Handler, safe for concurrent use.
type Proxy struct {
	cfg    Config
	rp     *httputil.ReverseProxy
	bucket *tokenBucket // nil when unlimited

	rngMu sync.Mutex
	rng   *rand.Rand

	requests, throttled, up, down atomic.Int64
}

// New returns a Proxy for cfg.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	target, _ := url.Parse(cfg.Upstream)
	p := &Proxy{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6e69787333712d77))}
	if cfg.Bandwidth > 0 {
		p.bucket = newTokenBucket(float64(cfg.Bandwidth)/8, cfg.Burst)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // SigV4 signs the Host header
		},
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
		},
		ModifyResponse: func(resp *http.Response) error {
			return sleepCtx(resp.Request.Context(), p.cfg.Latency-p.cfg.Latency/2)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				http.Error(w, "wanproxy: "+err.Error(), http.StatusBadGateway)
			}
		},
		FlushInterval: -1,
	}
	return p, nil
}

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	return Stats{Requests: p.requests.Load(), Throttled: p.throttled.Load(), BytesUp: p.up.Load(), BytesDown: p.down.Load()}
}

// throttle draws whether the next request is throttled.
func (p *Proxy) throttle() bool {
	if p.cfg.Throttle == 0 {
		return false
	}
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	return p.rng.Float64() < p.cfg.Throttle
}

// slowDownBody is S3's error document for throttling.
const slowDownBody = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
	`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><Resource>%s</Resource><RequestId>wanproxy-%d</RequestId></Error>`

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.requests.Add(1)
	ctx := r.Context()
	if p.throttle() {
		p.throttled.Add(1)
		if sleepCtx(ctx, p.cfg.Latency) != nil {
			return
		}
		// A throttled request is refused without reading its body; the
		// connection is closed so that the unread body cannot be taken
		// for the next request.
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(p.cfg.RetryAfter.Seconds()))))
		w.WriteHeader(http.StatusServiceUnavailable)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, slowDownBody, r.URL.Path, n)
		}
		return
	}
	if sleepCtx(ctx, p.cfg.Latency/2) != nil {
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &pacedReader{r: r.Body, ctx: ctx, p: p}
	}
	p.rp.ServeHTTP(&pacedWriter{ResponseWriter: w, ctx: ctx, p: p}, r)
}

// pace draws n bytes from the shared bucket.
func (p *Proxy) pace(ctx context.Context, n int) error {
	if p.bucket == nil || n <= 0 {
		return nil
	}
	return p.bucket.take(ctx, n)
}

// pacedReader paces a request body as the upstream reads it.
type pacedReader struct {
	r   io.ReadCloser
	ctx context.Context
	p   *Proxy
}

func (r *pacedReader) Read(b []byte) (int, error) {
	if len(b) > chunk {
		b = b[:chunk]
	}
	n, err := r.r.Read(b)
	r.p.up.Add(int64(n))
	if perr := r.p.pace(r.ctx, n); perr != nil && err == nil {
		err = perr
	}
	return n, err
}

func (r *pacedReader) Close() error { return r.r.Close() }

// pacedWriter paces a response body as it is written to the client.
type pacedWriter struct {
	http.ResponseWriter
	ctx context.Context
	p   *Proxy
}

func (w *pacedWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		part := b[:min(len(b), chunk)]
		if err := w.p.pace(w.ctx, len(part)); err != nil {
			return written, err
		}
		n, err := w.ResponseWriter.Write(part)
		written += n
		w.p.down.Add(int64(n))
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

// Unwrap lets http.ResponseController reach the real writer (flushes).
func (w *pacedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Server is a Proxy listening on a loopback port.
type Server struct {
	*Proxy
	ln  net.Listener
	srv *http.Server
	URL string // http://127.0.0.1:PORT
}

// Start listens on 127.0.0.1 (a free port) and serves p until Close.
func Start(p *Proxy) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("wanproxy: listen: %w", err)
	}
	s := &Server{Proxy: p, ln: ln, srv: &http.Server{Handler: p, ReadHeaderTimeout: time.Minute}, URL: "http://" + ln.Addr().String()}
	go func() { _ = s.srv.Serve(ln) }() // ErrServerClosed after Close
	return s, nil
}

// Host is the proxy's host:port.
func (s *Server) Host() string { return s.ln.Addr().String() }

// Close stops listening and closes every connection.
func (s *Server) Close() error { return s.srv.Close() }
