package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nixs3q/nixs3q/nix"
)

// fakeStore builds store paths in a temporary store directory and serves
// their metadata as a PathInfoSource. NarHash and NarSize are computed with
// nix.DumpPath when a path is added, as the store's database would record.
type fakeStore struct {
	dir   string
	mu    sync.Mutex
	infos map[string]*PathInfo
	calls int
}

var _ PathInfoSource = (*fakeStore)(nil)

func newFakeStore(t testing.TB) *fakeStore {
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &fakeStore{dir: dir, infos: make(map[string]*PathInfo)}
}

// hashPart derives a valid 32-character hash part from name.
func hashPart(name string) string {
	sum := sha256.Sum256([]byte(name))
	return nix.EncodeBase32(sum[:20])
}

// add creates a directory path holding files (name -> contents; a name
// ending in "*" is made executable) and records it with the given
// references (full paths; pass the path's own name as "self" to add a
// self-reference).
func (s *fakeStore) add(t testing.TB, name string, files map[string]string, refs ...string) string {
	t.Helper()
	p := filepath.Join(s.dir, hashPart(name)+"-"+name)
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	for fname, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(fname, "*") {
			fname, mode = strings.TrimSuffix(fname, "*"), 0o755
		}
		full := filepath.Join(p, fname)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	var references []string
	for _, r := range refs {
		if r == "self" {
			r = p
		}
		references = append(references, r)
	}
	slices.Sort(references)
	narHash, narSize := dumpHash(t, p)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.infos[p] = &PathInfo{Path: p, NarHash: narHash, NarSize: narSize, References: references}
	return p
}

// info returns the recorded metadata of p for tests to adjust.
func (s *fakeStore) info(p string) *PathInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infos[p]
}

func (s *fakeStore) PathInfo(ctx context.Context, paths []string, closure bool) ([]PathInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	seen := make(map[string]bool)
	var walk func(p string) error
	walk = func(p string) error {
		if seen[p] {
			return nil
		}
		info := s.infos[p]
		if info == nil {
			return fmt.Errorf("fake store: %s: %w", p, ErrPathGone)
		}
		seen[p] = true
		if closure {
			for _, r := range info.References {
				if err := walk(r); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, p := range paths {
		if err := walk(p); err != nil {
			return nil, err
		}
	}
	var out []PathInfo
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range seen {
			if !yield(p) {
				return
			}
		}
	}) {
		info := *s.infos[p]
		info.References = slices.Clone(info.References)
		info.Sigs = slices.Clone(info.Sigs)
		out = append(out, info)
	}
	return out, nil
}

func dumpNAR(t testing.TB, p string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := nix.DumpPath(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func dumpHash(t testing.TB, p string) (nix.Hash, uint64) {
	t.Helper()
	nar := dumpNAR(t, p)
	sum := sha256.Sum256(nar)
	return nix.NewSHA256(sum[:]), uint64(len(nar))
}

// keyOf returns the narinfo key of a full store path.
func keyOf(t testing.TB, storeDir, p string) string {
	t.Helper()
	sp, err := nix.ParseStorePath(storeDir, p)
	if err != nil {
		t.Fatal(err)
	}
	return narinfoKey(sp)
}
