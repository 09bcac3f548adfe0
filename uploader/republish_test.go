package uploader

import (
	"context"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/nix"
)

func TestRepublishReplacesBrokenEntries(t *testing.T) {
	ctx := context.Background()
	s := newFakeStore(t)
	p := diamond(t, s)
	c := newFakeCache()
	key, err := nix.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	u := newTestUploader(t, testConfig(s.dir), c, s, newFakePresence(), key)
	if _, err := u.Upload(ctx, p["a"]); err != nil {
		t.Fatal(err)
	}
	keyD, keyE, keyB := keyOf(t, s.dir, p["d"]), keyOf(t, s.dir, p["e"]), keyOf(t, s.dir, p["b"])
	data, _ := c.object(keyD)
	ni, err := nix.ParseNarInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	// Break d (its NAR is gone), and lose e's narinfo altogether.
	if err := c.Delete(ctx, ni.URL); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, keyE); err != nil {
		t.Fatal(err)
	}
	before := len(c.putLog())

	// A plain upload believes d is there and, with the presence cache, does
	// nothing at all.
	if res, err := u.Upload(ctx, p["d"]); err != nil || res.Uploaded != 0 {
		t.Fatalf("Upload = %+v, %v; want nothing uploaded", res, err)
	}

	var results []Result
	u.Republish(ctx, []string{p["d"]}, func(root string, res Result, err error) {
		if err != nil {
			t.Errorf("Republish %s: %v", root, err)
		}
		results = append(results, res)
	})
	if len(results) != 1 || results[0].Uploaded != 2 {
		t.Fatalf("Republish results %+v, want d and e uploaded", results)
	}
	puts := c.putLog()[before:]
	if _, ok := c.object(ni.URL); !ok {
		t.Errorf("d's NAR is still missing after Republish")
	}
	iE, iD := slices.Index(puts, keyE), slices.Index(puts, keyD)
	if iE < 0 || iD < 0 || iE > iD {
		t.Errorf("puts %v: want e's narinfo, then d's", puts)
	}
	if slices.Contains(puts, keyB) {
		t.Errorf("Republish of d re-uploaded b, which refers to it: %v", puts)
	}
	for _, k := range puts {
		if strings.HasSuffix(k, ".narinfo") && k != keyD && k != keyE {
			t.Errorf("unexpected narinfo put %s", k)
		}
	}
	data, _ = c.object(keyD)
	ni2, err := nix.ParseNarInfo(data)
	if err != nil || len(ni2.Sigs) != 1 || path.Base(ni2.StorePath) != path.Base(p["d"]) {
		t.Errorf("republished narinfo %+v, %v", ni2, err)
	}
}
