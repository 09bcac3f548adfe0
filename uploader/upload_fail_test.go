package uploader

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestUploadHashMismatch(t *testing.T) {
	for _, compression := range []string{"zstd", "xz", "none"} {
		for _, change := range []string{"same size", "longer"} {
			t.Run(compression+"/"+change, func(t *testing.T) {
				s := newFakeStore(t)
				x := s.add(t, "x", map[string]string{"data": "hello world"})
				sib := s.add(t, "sibling", map[string]string{"data": "fine"})
				root := s.add(t, "root", map[string]string{"f": "r"}, x, sib)
				content := "HELLO WORLD"
				if change == "longer" {
					content = "hello world, longer"
				}
				if err := os.WriteFile(filepath.Join(x, "data"), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				c := newFakeCache()
				cfg := testConfig(s.dir)
				cfg.Compression = compression
				u := newTestUploader(t, cfg, c, s, nil, nil)

				_, err := u.Upload(context.Background(), root)
				if !errors.Is(err, ErrHashMismatch) {
					t.Fatalf("error %v, want ErrHashMismatch", err)
				}
				if !strings.Contains(err.Error(), x) {
					t.Errorf("error does not name %s: %v", x, err)
				}
				if !Classify(err).Permanent {
					t.Errorf("hash mismatch classified transient")
				}
				narKey := narKey(s.info(x).NarHash, u.codec.ext)
				// A small NAR is verified before its one request is
				// sent; a streamed one fails its only attempt.
				want := 1
				if u.isSmall(s.info(x)) {
					want = 0
				}
				if c.attemptsOf(narKey) != want {
					t.Errorf("NAR put %d times, want %d attempts", c.attemptsOf(narKey), want)
				}
				if _, ok := c.object(narKey); ok || slices.Contains(c.putLog(), narKey) {
					t.Errorf("mismatching NAR committed at %s", narKey)
				}
				for _, p := range []string{x, root} {
					if _, ok := c.object(keyOf(t, s.dir, p)); ok {
						t.Errorf("narinfo of %s published", p)
					}
				}
				if _, ok := c.object(keyOf(t, s.dir, sib)); !ok {
					t.Errorf("independent sibling not published")
				}
				checkCache(t, c, s.dir, nil)
			})
		}
	}
}

func TestUploadReferenceFailure(t *testing.T) {
	denied := &fs.PathError{Op: "put", Path: "cache", Err: fs.ErrPermission}
	for _, failing := range []string{"nar", "narinfo"} {
		t.Run(failing, func(t *testing.T) {
			s := newFakeStore(t)
			p := diamond(t, s)
			c := newFakeCache()
			key := keyOf(t, s.dir, p["d"])
			if failing == "nar" {
				key = narKey(s.info(p["d"]).NarHash, ".zst")
			}
			c.failPut[key] = denied
			u := newTestUploader(t, testConfig(s.dir), c, s, nil, nil)

			res, err := u.Upload(context.Background(), p["a"])
			if !errors.Is(err, fs.ErrPermission) {
				t.Fatalf("error %v does not wrap the cause", err)
			}
			if want := p["a"] + " not published because " + p["d"] + " failed"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if !Classify(err).Permanent {
				t.Errorf("permission error classified transient")
			}
			for _, x := range []string{"a", "b", "c", "d"} {
				if _, ok := c.object(keyOf(t, s.dir, p[x])); ok {
					t.Errorf("narinfo of %s published although %s failed", x, p["d"])
				}
			}
			if _, ok := c.object(keyOf(t, s.dir, p["e"])); !ok {
				t.Errorf("e, which does not depend on d, not published")
			}
			if res.Uploaded != 1 {
				t.Errorf("result %+v, want 1 uploaded (e)", res)
			}
			checkCache(t, c, s.dir, nil)
		})
	}
}

func TestUploadPathGone(t *testing.T) {
	s := newFakeStore(t)
	x := s.add(t, "x", map[string]string{"data": "d"})
	root := s.add(t, "root", map[string]string{"f": "r"}, x)
	if err := os.RemoveAll(x); err != nil {
		t.Fatal(err)
	}
	c := newFakeCache()
	u := newTestUploader(t, testConfig(s.dir), c, s, nil, nil)
	_, err := u.Upload(context.Background(), root)
	if !errors.Is(err, ErrPathGone) {
		t.Fatalf("error %v, want ErrPathGone", err)
	}
	// root's NAR may have been stored before x failed; no narinfo may be.
	for _, key := range c.putLog() {
		if strings.HasSuffix(key, ".narinfo") {
			t.Errorf("published %s", key)
		}
	}
}

func TestUploadCancel(t *testing.T) {
	s := newFakeStore(t)
	x := s.add(t, "x", map[string]string{"data": strings.Repeat("x", 300_000)})
	c := newFakeCache()
	u := newTestUploader(t, testConfig(s.dir), c, s, nil, nil)
	started, release := make(chan struct{}), make(chan struct{})
	c.beforePut = func(key string) {
		if strings.HasPrefix(key, "nar/") {
			close(started)
			<-release
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := u.Upload(ctx, x); done <- err }()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	close(release)
	waitFor(t, func() bool {
		u.mu.Lock()
		defer u.mu.Unlock()
		return len(u.flights) == 0 && len(u.transfers) == 0
	})
	if log := c.putLog(); len(log) != 0 {
		t.Errorf("cancelled upload committed %v", log)
	}
}
