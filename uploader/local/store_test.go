package local_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
