package uploader

import (
	"context"
	"strings"
	"testing"
)

// Closure members signed by an upstream cache's key are neither looked up
// nor uploaded when that key is named in SkipSignedBy; their referrers are
// still published, referring to them.
func TestSkipSignedByUpstream(t *testing.T) {
	s := newFakeStore(t)
	libc := s.add(t, "libc", map[string]string{"f": strings.Repeat("c", 10_000)})
	s.info(libc).Sigs = []string{"cache.nixos.org-1:" + strings.Repeat("A", 86) + "=="}
	mine := s.add(t, "mine", map[string]string{"f": "m"}, libc)
	other := s.add(t, "other", map[string]string{"f": "o"})
	s.info(other).Sigs = []string{"someone-else-1:" + strings.Repeat("B", 86) + "=="}
	root := s.add(t, "root", map[string]string{"f": "r"}, mine, other)

	cache := newFakeCache()
	cfg := testConfig(s.dir)
	cfg.SkipSignedBy = []string{"cache.nixos.org-1"}
	u := newTestUploader(t, cfg, cache, s, nil, nil)
	res, err := u.Upload(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 3 || res.Skipped != 1 {
		t.Errorf("result %+v, want 3 uploaded (root, mine, other) and 1 skipped (libc)", res)
	}
	libcKey := keyOf(t, s.dir, libc)
	if _, ok := cache.object(libcKey); ok || cache.headsOf(libcKey) != 0 {
		t.Errorf("upstream path was looked up (%d) or uploaded", cache.headsOf(libcKey))
	}
	if _, ok := cache.object(keyOf(t, s.dir, other)); !ok {
		t.Error("a path signed by an unlisted key was not uploaded")
	}
	b, ok := cache.object(keyOf(t, s.dir, mine))
	if !ok || !strings.Contains(string(b), strings.TrimPrefix(libc, s.dir+"/")) {
		t.Errorf("referrer of the upstream path not published with its reference:\n%s", b)
	}
}

func TestSkipSignedByValidated(t *testing.T) {
	for _, bad := range []string{"", "cache.nixos.org-1:abc", "two words"} {
		cfg := testConfig(t.TempDir())
		cfg.SkipSignedBy = []string{bad}
		if err := cfg.Validate(); err == nil {
			t.Errorf("SkipSignedBy %q accepted", bad)
		}
	}
}
