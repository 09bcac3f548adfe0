package setup

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

// checkPublic reads nix-cache-info and one narinfo through PublicURL with
// plain, anonymous HTTP GETs, as a Nix client does, and checks the
// narinfo's signature against the key file.
func (d *doctor) checkPublic(ctx context.Context) {
	base := strings.TrimSuffix(d.cfg.PublicURL, "/")
	if base == "" {
		d.r.skip("public-read", "no --public-url given: what clients can read over HTTP is not checked")
		return
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.r.fail("public-read", "give --public-url as http(s)://HOST[:PORT]/PATH, the substituter URL of clients", "%q is not an HTTP(S) URL", d.cfg.PublicURL)
		return
	}
	fixDenied := "run 'nixs3q init --public-read' (or add the anonymous-read bucket policy), or give clients credentials and an s3:// substituter"
	body, status, err := d.httpGet(ctx, base+"/"+nix.CacheInfoKey)
	switch {
	case err != nil:
		d.r.fail("public-read", "check that clients can reach "+u.Host, "GET %s/%s failed: %v", base, nix.CacheInfoKey, err)
		return
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		d.r.fail("public-read", fixDenied, "anonymous GET of %s/%s is denied (HTTP %d)", base, nix.CacheInfoKey, status)
		return
	case status == http.StatusNotFound:
		d.r.fail("public-read", "give the URL of the cache's root, e.g. http://HOST:PORT/BUCKET for path-style S3",
			"%s/%s is not found (HTTP 404)", base, nix.CacheInfoKey)
		return
	case status != http.StatusOK:
		d.r.fail("public-read", "check the web server or proxy in front of the cache", "GET %s/%s answered HTTP %d", base, nix.CacheInfoKey, status)
		return
	}
	info, err := nix.ParseCacheInfo(string(body))
	if err != nil {
		d.r.fail("public-read", "check that the URL serves the cache itself, not a web page", "%s/%s: %v", base, nix.CacheInfoKey, err)
		return
	}
	if info.StoreDir != d.cfg.StoreDir {
		d.r.fail("public-read", "use the URL of this store's cache", "%s serves a cache for %s, not %s", base, info.StoreDir, d.cfg.StoreDir)
		return
	}
	d.r.ok("public-read", "anonymous GET of %s/%s works", base, nix.CacheInfoKey)

	if d.sample == nil {
		d.r.skip("public-narinfo", "no cache to take a narinfo from")
		return
	}
	sctx, cancel := d.op(ctx)
	key, err := d.sample(sctx)
	cancel()
	switch {
	case key == "" && err != nil:
		d.r.skip("public-narinfo", "cannot list the cache to find a narinfo: %v", err)
		return
	case key == "":
		d.r.ok("public-narinfo", "the cache has no narinfo yet")
		return
	}
	body, status, err = d.httpGet(ctx, base+"/"+key)
	switch {
	case err != nil:
		d.r.fail("public-narinfo", "check that clients can reach "+u.Host, "GET %s/%s failed: %v", base, key, err)
		return
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		d.r.fail("public-narinfo", fixDenied, "anonymous GET of %s/%s is denied (HTTP %d)", base, key, status)
		return
	case status != http.StatusOK:
		d.r.fail("public-narinfo", "check the web server or proxy in front of the cache", "GET %s/%s answered HTTP %d", base, key, status)
		return
	}
	ni, err := nix.ParseNarInfo(body)
	if err != nil {
		d.r.fail("public-narinfo", "republish the path ('nixs3q push')", "%s: %v", key, err)
		return
	}
	if d.signer == nil {
		d.r.ok("public-narinfo", "read %s (signature not checked: no key file and no daemon)", key)
		return
	}
	pub := *d.signer
	fp, err := ni.Fingerprint(d.cfg.StoreDir)
	if err == nil {
		for _, sig := range ni.Sigs {
			if pub.Verify(fp, sig) {
				d.r.ok("public-narinfo", "read %s, signed by %s", key, pub.Name)
				return
			}
		}
	}
	d.r.warn("public-narinfo", "trust the key that signed it on clients as well, or republish the path with this key",
		"%s is not signed by %s: clients that trust only this key build that path themselves", key, pub.Name)
}

// httpGet GETs url without credentials and returns up to 1 MiB of body.
func (d *doctor) httpGet(ctx context.Context, u string) ([]byte, int, error) {
	ctx, cancel := d.op(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, resp.StatusCode, err
	}
	return body, resp.StatusCode, nil
}

// checkDaemon reports whether the daemon answers, whether it publishes to
// the cache checked, and its queue's health.
func (d *doctor) checkDaemon(st *hook.Status, err error) {
	if err != nil {
		d.r.warn("daemon", "start it ('systemctl start nixs3q' or 'nixs3q daemon ...'), or pass --socket", "%v", err)
		return
	}
	if d.spec.Scheme != "" && st.Store != "" {
		if theirs, perr := storeurl.Parse(st.Store); perr == nil && !sameCache(theirs, d.spec) {
			d.r.warn("daemon", "check the daemon's --store", "the daemon publishes to %s, not to the cache checked here", st.Store)
			return
		}
	}
	queue := fmt.Sprintf("%d pending, %d in flight, %d failed", st.Pending, st.InFlight, st.Failed)
	oldest := time.Duration(st.OldestPendingSeconds * float64(time.Second))
	switch {
	case st.Failed > 0:
		first := ""
		if len(st.Failures) > 0 {
			first = "; " + st.Failures[0].Path + ": " + st.Failures[0].LastError
		}
		d.r.warn("daemon", "fix the cause 'nixs3q status' shows, then run 'nixs3q retry'", "running: %s%s", queue, first)
	case oldest > d.cfg.MaxPendingAge:
		d.r.warn("daemon", "see 'nixs3q status' and the daemon's log for why uploads do not progress",
			"running: %s; the oldest path has waited %s", queue, oldest.Round(time.Second))
	default:
		d.r.ok("daemon", "running: %s", queue)
	}
}

// sameCache reports whether two specs name the same bucket or directory.
func sameCache(a, b storeurl.Spec) bool {
	if a.Scheme != b.Scheme {
		return false
	}
	if a.Scheme == "file" {
		return a.Dir == b.Dir
	}
	return a.S3.Bucket == b.S3.Bucket
}
