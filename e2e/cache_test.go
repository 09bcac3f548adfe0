//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nixs3q/nixs3q/nix"
)

const storeDir = "/nix/store"

// cacheView reads a binary cache the way clients see it, independently of
// nixs3q's own backends.
type cacheView interface {
	// nixURL is the URL Nix substitutes from.
	nixURL() string
	// list returns every key in the cache, sorted.
	list(t *testing.T, ctx context.Context) []string
	// get returns an object; a missing one is an error wrapping
	// fs.ErrNotExist.
	get(ctx context.Context, key string) ([]byte, error)
}

// dirCache is a file:// cache.
type dirCache struct{ dir string }

func (c dirCache) nixURL() string { return "file://" + c.dir }

func (c dirCache) list(t *testing.T, ctx context.Context) []string {
	t.Helper()
	var keys []string
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(c.dir, p)
			if err != nil {
				return err
			}
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("listing %s: %v", c.dir, err)
	}
	slices.Sort(keys)
	return keys
}

func (c dirCache) get(ctx context.Context, key string) ([]byte, error) {
	return os.ReadFile(filepath.Join(c.dir, filepath.FromSlash(key)))
}

// bucketCache is an S3 bucket with anonymous read access: objects are read
// over plain HTTP as Nix reads them, and listed through the S3 API with
// credentials.
type bucketCache struct {
	endpoint string // http://127.0.0.1:PORT
	bucket   string
	s3       *awss3.Client
}

func (c bucketCache) nixURL() string { return c.endpoint + "/" + c.bucket }

func (c bucketCache) list(t *testing.T, ctx context.Context) []string {
	t.Helper()
	var keys []string
	p := awss3.NewListObjectsV2Paginator(c.s3, &awss3.ListObjectsV2Input{Bucket: aws.String(c.bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing bucket %s: %v", c.bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	slices.Sort(keys)
	return keys
}

func (c bucketCache) get(ctx context.Context, key string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.nixURL()+"/"+key, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusForbidden:
		return nil, fmt.Errorf("GET %s: %s: %w", key, resp.Status, fs.ErrNotExist)
	default:
		return nil, fmt.Errorf("GET %s: %s", key, resp.Status)
	}
	want := ""
	switch {
	case strings.HasSuffix(key, ".narinfo"):
		want = "text/x-nix-narinfo"
	case strings.HasPrefix(key, "nar/"):
		want = "application/x-nix-nar"
	case key == "nix-cache-info":
		want = "text/x-nix-cache-info"
	}
	if got := resp.Header.Get("Content-Type"); want != "" && got != want {
		return nil, fmt.Errorf("GET %s: Content-Type %q, want %q", key, got, want)
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" {
		return nil, fmt.Errorf("GET %s: unexpected Content-Encoding %q", key, enc)
	}
	return body, nil
}

// cacheContents is a verified snapshot of a cache.
type cacheContents struct {
	keys     []string
	narinfos map[string]*nix.NarInfo // by full store path
}

// verifyCache reads the whole cache and checks what clients rely on:
// nix-cache-info names /nix/store; every narinfo parses, sits under its
// path's hash part, carries a signature that verifies under pub; its NAR
// exists, matches FileSize and FileHash, and decompresses to a NAR of
// NarSize bytes hashing to NarHash; and the narinfos of all its references
// exist. Returns the narinfos found.
func verifyCache(t *testing.T, ctx context.Context, c cacheView, pub nix.PublicKey) cacheContents {
	t.Helper()
	defer timed(t, "verifying every narinfo and NAR in the cache")()
	keys := c.list(t, ctx)
	have := make(map[string]bool, len(keys))
	for _, k := range keys {
		have[k] = true
	}
	info, err := c.get(ctx, "nix-cache-info")
	if err != nil {
		t.Fatalf("nix-cache-info: %v", err)
	}
	if !strings.Contains(string(info), "StoreDir: "+storeDir+"\n") {
		t.Fatalf("nix-cache-info does not name %s:\n%s", storeDir, info)
	}
	cc := cacheContents{keys: keys, narinfos: map[string]*nix.NarInfo{}}
	for _, k := range keys {
		if !strings.HasSuffix(k, ".narinfo") || strings.Contains(k, "/") {
			continue
		}
		ni := verifyNarInfo(t, ctx, c, pub, k, have)
		if ni != nil {
			cc.narinfos[ni.StorePath] = ni
		}
	}
	return cc
}

func verifyNarInfo(t *testing.T, ctx context.Context, c cacheView, pub nix.PublicKey, key string, have map[string]bool) *nix.NarInfo {
	t.Helper()
	data, err := c.get(ctx, key)
	if err != nil {
		t.Errorf("%s: %v", key, err)
		return nil
	}
	ni, err := nix.ParseNarInfo(data)
	if err != nil {
		t.Errorf("%s: %v\n%s", key, err, data)
		return nil
	}
	sp, err := nix.ParseStorePath(storeDir, ni.StorePath)
	if err != nil || sp.HashPart+".narinfo" != key {
		t.Errorf("%s: StorePath %q does not belong under this key (%v)", key, ni.StorePath, err)
		return nil
	}
	fp, err := ni.Fingerprint(storeDir)
	if err != nil {
		t.Errorf("%s: fingerprint: %v", key, err)
		return nil
	}
	signed := false
	for _, s := range ni.Sigs {
		if pub.Verify(fp, s) {
			signed = true
		}
	}
	if !signed {
		t.Errorf("%s: no signature verifies under %s (sigs %q)", key, pub, ni.Sigs)
	}
	for _, ref := range ni.References {
		rp, err := nix.StorePathFromBase(storeDir, ref)
		if err != nil {
			t.Errorf("%s: reference %q: %v", key, ref, err)
			continue
		}
		if !have[rp.HashPart+".narinfo"] {
			t.Errorf("%s: published although its reference %s has no narinfo", key, ref)
		}
	}
	if !have[ni.URL] {
		t.Errorf("%s: published although its NAR %s is missing", key, ni.URL)
		return ni
	}
	file, err := c.get(ctx, ni.URL)
	if err != nil {
		t.Errorf("%s: NAR: %v", key, err)
		return ni
	}
	if ni.FileSize != 0 && uint64(len(file)) != ni.FileSize {
		t.Errorf("%s: NAR %s has %d bytes, FileSize says %d", key, ni.URL, len(file), ni.FileSize)
	}
	if !ni.FileHash.IsZero() && !ni.FileHash.Equal(nix.NewSHA256(sha256Of(file))) {
		t.Errorf("%s: NAR %s does not match FileHash", key, ni.URL)
	}
	nar, err := decompress(ni.Compression, file)
	if err != nil {
		t.Errorf("%s: NAR %s: %v", key, ni.URL, err)
		return ni
	}
	if uint64(len(nar)) != ni.NarSize || !ni.NarHash.Equal(nix.NewSHA256(sha256Of(nar))) {
		t.Errorf("%s: NAR %s decompresses to %d bytes not matching NarHash/NarSize (%d)", key, ni.URL, len(nar), ni.NarSize)
	}
	return ni
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func decompress(method string, b []byte) ([]byte, error) {
	switch method {
	case "none", "":
		return b, nil
	case "zstd":
		d, err := zstd.NewReader(nil)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.DecodeAll(b, nil)
	case "xz":
		r, err := xz.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	default:
		return nil, fmt.Errorf("unexpected compression %q", method)
	}
}

// requirePublished requires a narinfo for every local path whose NarHash,
// NarSize and References agree with the local store.
func requirePublished(t *testing.T, cc cacheContents, local map[string]localInfo) {
	t.Helper()
	missing := 0
	for p, li := range local {
		ni, ok := cc.narinfos[p]
		if !ok {
			missing++
			if missing <= 5 {
				t.Errorf("%s: not in the cache", p)
			}
			continue
		}
		h, err := nix.ParseHash(li.NarHash)
		if err != nil {
			t.Fatalf("local NarHash of %s: %v", p, err)
		}
		if !h.Equal(ni.NarHash) || li.NarSize != ni.NarSize {
			t.Errorf("%s: cache has NarHash %s size %d, the store %s size %d", p, ni.NarHash, ni.NarSize, li.NarHash, li.NarSize)
		}
		var refs []string
		for _, r := range li.References {
			refs = append(refs, filepath.Base(r))
		}
		slices.Sort(refs)
		got := slices.Sorted(slices.Values(ni.References))
		if !slices.Equal(refs, got) {
			t.Errorf("%s: cache References %q, the store %q", p, got, refs)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d paths are not in the cache", missing, len(local))
	}
}
