package uploader

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// TestFilters checks the filter semantics on the diamond
//
//	a → b → d → e,  a → c → d,  c → e
//
// with one member excluded by name or size, or none, and with part of the
// closure already in the cache.
func TestFilters(t *testing.T) {
	for _, tc := range []struct {
		name       string
		filters    func(p map[string]string, s *fakeStore) Filters
		warm       string   // uploaded without filters first, "" for none
		published  []string // letters whose narinfo the cache holds at the end
		excluded   int
		heldBack   int
		heldBy     string // letter, for the root a
		heldReason string
	}{
		{"no filters", func(map[string]string, *fakeStore) Filters { return Filters{} }, "", []string{"a", "b", "c", "d", "e"}, 0, 0, "", ""},
		{"exclude a leaf holds back everything above it", func(map[string]string, *fakeStore) Filters { return Filters{Exclude: "^e$"} }, "",
			nil, 1, 4, "e", ""},
		{"exclude a middle path", func(map[string]string, *fakeStore) Filters { return Filters{Exclude: "^d$"} }, "",
			[]string{"e"}, 1, 3, "d", ""},
		{"exclude one branch", func(map[string]string, *fakeStore) Filters { return Filters{Exclude: "b"} }, "",
			[]string{"c", "d", "e"}, 1, 1, "b", ""},
		{"exclude the root", func(map[string]string, *fakeStore) Filters { return Filters{Exclude: "^a$"} }, "",
			[]string{"b", "c", "d", "e"}, 1, 0, "a", ""},
		{"pattern matching nothing", func(map[string]string, *fakeStore) Filters { return Filters{Exclude: "^zzz"} }, "",
			[]string{"a", "b", "c", "d", "e"}, 0, 0, "", ""},
		{"an excluded path the cache already has holds nothing back", func(map[string]string, *fakeStore) Filters { return Filters{Exclude: "^d$"} }, "d",
			[]string{"a", "b", "c", "d", "e"}, 0, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeStore(t)
			p := diamond(t, s)
			// c is the largest NAR.
			c := newFakeCache()
			if tc.warm != "" {
				if _, err := newTestUploader(t, testConfig(s.dir), c, s, nil, nil).Upload(context.Background(), p[tc.warm]); err != nil {
					t.Fatal(err)
				}
			}
			cfg := testConfig(s.dir)
			cfg.Filters = tc.filters(p, s)
			u := newTestUploader(t, cfg, c, s, nil, nil)
			res, err := u.Upload(context.Background(), p["a"])
			if err != nil {
				t.Fatalf("Upload: %v (filters do not fail an upload)", err)
			}
			infos := checkCache(t, c, s.dir, nil)
			var got []string
			for _, l := range []string{"a", "b", "c", "d", "e"} {
				if _, ok := infos[keyOf(t, s.dir, p[l])]; ok {
					got = append(got, l)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.published, ",") {
				t.Errorf("published %v, want %v", got, tc.published)
			}
			if res.Excluded != tc.excluded || res.HeldBack != tc.heldBack {
				t.Errorf("result %+v, want %d excluded and %d held back", res, tc.excluded, tc.heldBack)
			}
			wantBy := ""
			if tc.heldBy != "" {
				wantBy = p[tc.heldBy]
			}
			if res.HeldBy != wantBy {
				t.Errorf("HeldBy %q, want %q", res.HeldBy, wantBy)
			}
			if res.Uploaded+res.Skipped+res.Excluded+res.HeldBack != 5 {
				t.Errorf("result %+v does not account for the 5 members", res)
			}
		})
	}
}

func TestFilterMaxNarSize(t *testing.T) {
	s := newFakeStore(t)
	big := s.add(t, "big", map[string]string{"data": strings.Repeat("x", 64<<10)})
	user := s.add(t, "user", map[string]string{"f": "small"}, big)
	other := s.add(t, "other", map[string]string{"f": "small"})
	top := s.add(t, "top", map[string]string{"f": "small"}, other)
	c := newFakeCache()
	cfg := testConfig(s.dir)
	cfg.Filters = Filters{MaxNarSize: 32 << 10}
	u := newTestUploader(t, cfg, c, s, nil, nil)
	res, err := u.Upload(context.Background(), user)
	if err != nil || res.Excluded != 1 || res.HeldBack != 1 || res.HeldBy != big || len(c.putLog()) != 0 {
		t.Errorf("user: %+v, %v, put %v; want big excluded, user held back by it, nothing put", res, err, c.putLog())
	}
	res, err = u.Upload(context.Background(), top)
	if err != nil || res.Uploaded != 2 || res.Excluded != 0 || res.HeldBy != "" {
		t.Errorf("top: %+v, %v; want both small paths uploaded", res, err)
	}
	checkCache(t, c, s.dir, nil)
}

// TestFiltersCountOncePerBatch checks that a member shared by two roots'
// closures counts once over the batch.
func TestFiltersCountOncePerBatch(t *testing.T) {
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	cfg := testConfig(s.dir)
	cfg.Filters = Filters{Exclude: "^e$"}
	u := newTestUploader(t, cfg, c, s, nil, nil)
	var mu sync.Mutex
	var excluded, held int
	u.UploadBatch(context.Background(), []string{p["b"], p["c"]}, func(root string, res Result, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("%s: %v", root, err)
		}
		if res.HeldBy != p["e"] {
			t.Errorf("%s held by %q, want %s", root, res.HeldBy, p["e"])
		}
		excluded += res.Excluded
		held += res.HeldBack
	})
	if excluded != 1 || held != 3 {
		t.Errorf("%d excluded and %d held back over the batch, want 1 and 3 (e; b, c, d)", excluded, held)
	}
	if len(c.putLog()) != 0 {
		t.Errorf("uploaded %v, want nothing", c.putLog())
	}
}

func TestFiltersValidate(t *testing.T) {
	for _, f := range []Filters{{Exclude: "("}, {MaxNarSize: -1}} {
		if err := f.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", f)
		}
		cfg := DefaultConfig()
		cfg.Filters = f
		if err := cfg.Validate(); err == nil {
			t.Errorf("Config.Validate with %+v = nil", f)
		}
	}
	if err := (Filters{Exclude: `-source$|\.iso$`, MaxNarSize: 1 << 30}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1024", 1024, true}, {"16M", 16 << 20, true}, {"2g", 2 << 30, true}, {"1T", 1 << 40, true}, {"8k", 8 << 10, true},
		{"", 0, false}, {"-1", 0, false}, {"1.5G", 0, false}, {"G", 0, false}, {"99999999999T", 0, false}, {"10MB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
