package local_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/cachetest"
	"github.com/nixs3q/nixs3q/uploader/local"
)

func newStore(t *testing.T) *local.Store {
	t.Helper()
	s, err := local.New(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) uploader.Cache { return newStore(t) })
}

func TestNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(dir, "nar")); err != nil || !info.IsDir() {
		t.Fatalf("nar/ not created: %v", err)
	}
	if got, want := s.String(), "file://"+dir; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, err := local.New("relative/dir"); err == nil {
		t.Error("New with a relative directory succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := local.New(file); err == nil {
		t.Error("New on a regular file succeeded")
	}
}

// TestLayout checks that keys map to the paths Nix reads (file:///DIR) and
// that objects are readable by other users, as a web server needs.
func TestLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"nix-cache-info", "abc.narinfo", "nar/abc.nar.zst", "log/x.drv"} {
		if err := s.Put(context.Background(), key, strings.NewReader(key), uploader.PutOptions{Size: int64(len(key))}); err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644", key, info.Mode().Perm())
		}
	}
}

// TestFailedPutLeavesNoTempFile checks the clean-up promise on every failure
// path: a failing body, a wrong size and a cancelled context.
func TestFailedPutLeavesNoTempFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		body func() *bytes.Reader
		opt  uploader.PutOptions
		fail bool
	}{
		{"failing body", context.Background(), nil, uploader.PutOptions{Size: -1}, true},
		{"short body", context.Background(), func() *bytes.Reader { return bytes.NewReader([]byte("abc")) }, uploader.PutOptions{Size: 4}, false},
		{"cancelled", cancelled, func() *bytes.Reader { return bytes.NewReader([]byte("abc")) }, uploader.PutOptions{Size: 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.fail {
				err = s.Put(tc.ctx, "nar/x", &failAfter{n: 1 << 20, err: injected}, tc.opt)
				if !errors.Is(err, injected) {
					t.Fatalf("Put = %v, want it to wrap the body's error", err)
				}
			} else {
				err = s.Put(tc.ctx, "nar/x", tc.body(), tc.opt)
			}
			if err == nil {
				t.Fatal("Put succeeded")
			}
			entries, err := os.ReadDir(filepath.Join(dir, "nar"))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Fatalf("nar/ holds %d entries after a failed Put, first %q", len(entries), entries[0].Name())
			}
		})
	}
}

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	n := min(len(p), f.n)
	clear(p[:n])
	f.n -= n
	return n, nil
}

// Under a restrictive umask (the NixOS module's UMask=0077) directories are
// still created 0755, like the 0644 files in them, so a web server can
// serve the cache.
func TestDirectoriesIgnoreUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "a")
	s, err := local.New(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), "log/x/y.drv", strings.NewReader("log"), uploader.PutOptions{Size: -1}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{root, filepath.Join(root, "cache"), filepath.Join(root, "cache", "nar"),
		filepath.Join(root, "cache", "log"), filepath.Join(root, "cache", "log", "x")} {
		info, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o755 {
			t.Errorf("%s has mode %04o, want 0755", d, info.Mode().Perm())
		}
	}
	info, err := os.Stat(filepath.Join(root, "cache", "log", "x", "y.drv"))
	if err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("file mode: %v %v", info, err)
	}
}

// Temporary files left by a crash are removed by New once they are
// StaleTempAge old; a recent one, possibly a live Put of another process,
// and other files stay.
func TestNewRemovesStaleTemps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if _, err := local.New(dir); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-local.StaleTempAge - time.Minute)
	files := map[string]bool{ // path -> should survive
		".tmp-abc.narinfo-123":      false,
		"nar/.tmp-x.nar.zst-456":    false,
		"nar/.tmp-live.nar.zst-789": true,
		"abc.narinfo":               true,
		"nar/.keep-not-a-temp":      true,
		"nar/x.nar.zst":             true,
	}
	for name, keep := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if !keep || !strings.Contains(name, "live") {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := local.New(dir); err != nil {
		t.Fatal(err)
	}
	for name, keep := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if keep && err != nil {
			t.Errorf("%s removed: %v", name, err)
		}
		if !keep && !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", name, err)
		}
	}
}
