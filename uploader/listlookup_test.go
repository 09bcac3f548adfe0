package uploader

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listingCache is fakeCache with ListTop, counting listings, and a denial
// switch.
type listingCache struct {
	*fakeCache
	listings atomic.Int64
	deny     bool
}

func (c *listingCache) ListTop(ctx context.Context, prefix string, fn func(Object) error) error {
	c.listings.Add(1)
	if c.deny {
		return fmt.Errorf("fake: list %q: %w", prefix, ErrAccessDenied)
	}
	return c.List(ctx, prefix, func(o Object) error {
		if strings.Contains(strings.TrimPrefix(o.Key, prefix), "/") {
			return nil
		}
		return fn(o)
	})
}

// closureOf adds n leaves and a root referring to them.
func closureOf(t *testing.T, s *fakeStore, n int) (root string, leaves []string) {
	for i := range n {
		leaves = append(leaves, s.add(t, fmt.Sprintf("leaf%d", i), map[string]string{"f": fmt.Sprint(i)}))
	}
	return s.add(t, "root", map[string]string{"f": "r"}, leaves...), leaves
}

func TestLookupByListing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		junk      int // extra top-level keys starting with "0"
		deny      bool
		ratio     int
		wantList  bool // the lookup was answered by listing
		wantHeads bool
	}{
		{name: "small bucket", wantList: true},
		{name: "bucket too large", junk: 1500, ratio: 1, wantHeads: true},
		{name: "listing denied", deny: true, wantHeads: true},
		{name: "listing off", ratio: -1, wantHeads: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeStore(t)
			root, leaves := closureOf(t, s, 2*listMinPaths)
			c := &listingCache{fakeCache: newFakeCache(), deny: tc.deny}
			cfg := testConfig(s.dir)
			cfg.ListRatio = tc.ratio
			// Fill the cache with half the closure, by another uploader.
			pre := newTestUploader(t, cfg, c.fakeCache, s, nil, nil)
			present := map[string]bool{}
			for _, l := range leaves[:listMinPaths] {
				if _, err := pre.Upload(context.Background(), l); err != nil {
					t.Fatal(err)
				}
				present[l] = true
			}
			for i := range tc.junk {
				c.set(fmt.Sprintf("0junk%05d.narinfo", i), []byte("x"))
			}
			heads0 := c.totalHeads()

			u := newTestUploader(t, cfg, c, s, nil, nil)
			res, err := u.Upload(context.Background(), root)
			if err != nil {
				t.Fatal(err)
			}
			if res.Uploaded != listMinPaths+1 || res.Skipped != listMinPaths {
				t.Errorf("result %+v, want %d uploaded and %d skipped", res, listMinPaths+1, listMinPaths)
			}
			heads := c.totalHeads() - heads0
			if tc.wantList && c.listings.Load() != 32 {
				t.Errorf("%d listings, want 32 (one per hash character)", c.listings.Load())
			}
			if tc.wantList && heads != 0 {
				t.Errorf("%d HEADs after a listing answered the lookup, want 0", heads)
			}
			if tc.wantHeads && heads < 2*listMinPaths+1 {
				t.Errorf("%d HEADs, want one per closure member (%d)", heads, 2*listMinPaths+1)
			}
			if tc.ratio < 0 && c.listings.Load() != 0 {
				t.Errorf("%d listings with listing off", c.listings.Load())
			}
			if tc.deny && !u.noList.Load() {
				t.Errorf("denied listing not remembered")
			}
			if tc.junk > 0 {
				if est := u.bucketKeys.Load(); est < int64(tc.junk) {
					t.Errorf("bucket estimate %d after an overflowing listing, want at least %d", est, tc.junk)
				}
				// The estimate now sends a lookup of the same size
				// straight to HEADs, without listing.
				before := c.listings.Load()
				if _, err := u.Upload(context.Background(), s.add(t, "root2", map[string]string{"f": "2"}, leaves...)); err != nil {
					t.Fatal(err)
				}
				if c.listings.Load() != before {
					t.Errorf("listed again although the estimate says the bucket is too large")
				}
			}
			checkCache(t, c.fakeCache, s.dir, nil)
		})
	}
}

// slowSource waits, inside the metadata query, until the cache has been
// listed: the first lookup of a process lists while `nix path-info` runs.
type slowSource struct {
	PathInfoSource
	c          *listingCache
	wait       time.Duration
	overlapped bool
}

func (s *slowSource) PathInfo(ctx context.Context, paths []string, closure bool) ([]PathInfo, error) {
	before := s.c.listings.Load()
	for deadline := time.Now().Add(s.wait); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if s.c.listings.Load() == before+32 {
			s.overlapped = true
			break
		}
	}
	return s.PathInfoSource.PathInfo(ctx, paths, closure)
}

func TestPrelistOverlapsMetadataQuery(t *testing.T) {
	s := newFakeStore(t)
	root, _ := closureOf(t, s, listMinPaths)
	c := &listingCache{fakeCache: newFakeCache()}
	src := &slowSource{PathInfoSource: s, c: c, wait: 5 * time.Second}
	u := newTestUploader(t, testConfig(s.dir), c, src, nil, nil)
	if _, err := u.Upload(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	if !src.overlapped {
		t.Fatalf("the metadata query returned before the cache was listed (%d listings)", c.listings.Load())
	}
	// The lookups were answered by that listing: no HEAD, no second listing.
	if c.totalHeads() != 0 || c.listings.Load() != 32 {
		t.Errorf("%d HEADs and %d listings, want 0 and the 32 of the early listing", c.totalHeads(), c.listings.Load())
	}
	// The process now has an estimate: no early listing any more.
	src.overlapped, src.wait = false, 200*time.Millisecond
	root2 := s.add(t, "root2", map[string]string{"f": "2"}, root)
	if _, err := u.Upload(context.Background(), root2); err != nil {
		t.Fatal(err)
	}
	if src.overlapped {
		t.Errorf("listed early again although the bucket's size is known")
	}
	checkCache(t, c.fakeCache, s.dir, nil)
}
