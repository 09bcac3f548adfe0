package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan/scantest"
	"github.com/nixs3q/nixs3q/uploader/local"
)

func TestVerifyCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := nix.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	w := &scantest.Writer{Cache: c, StoreDir: "/nix/store", Key: key, Compression: "zstd"}
	if err := w.PutCacheInfo(ctx); err != nil {
		t.Fatal(err)
	}
	leaf := scantest.NewPath("/nix/store", "leaf", []byte("leaf"))
	top := scantest.NewPath("/nix/store", "top", []byte("top"), leaf)
	for _, p := range []*scantest.Path{leaf, top} {
		if _, err := w.Publish(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	base := verifyFlags{store: "file://" + dir, trusted: listFlag{key.Public().String()}, grace: 24 * 3600e9, concurrency: 4, narConcurrency: 2, show: 10}
	run := func(f verifyFlags) (string, string, int) {
		var out, errOut bytes.Buffer
		err := verifyCache(ctx, f, &out, &errOut, zaptest.NewLogger(t))
		code := 0
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else if err != nil {
			t.Fatalf("verify: %v", err)
		}
		return out.String(), errOut.String(), code
	}

	out, _, code := run(base)
	if code != 0 || !strings.Contains(out, "problems: none") || !strings.Contains(out, "2 narinfos") {
		t.Fatalf("healthy cache: exit %d\n%s", code, out)
	}
	f := base
	f.checkNarHashes = true
	if out, _, code = run(f); code != 0 || !strings.Contains(out, "hashed:   2 NARs") {
		t.Fatalf("--check-nar-hashes: exit %d\n%s", code, out)
	}

	if err := c.Delete(ctx, leaf.HashPart+".narinfo"); err != nil {
		t.Fatal(err)
	}
	out, _, code = run(base)
	if code != 1 || !strings.Contains(out, "reference-missing") || !strings.Contains(out, top.HashPart+".narinfo") {
		t.Fatalf("broken cache: exit %d\n%s", code, out)
	}
	f = base
	f.json = true
	out, _, code = run(f)
	var rep struct {
		Problems []struct{ Kind, Key, Other string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || len(rep.Problems) != 1 || rep.Problems[0].Other != leaf.HashPart+".narinfo" {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}

	// The plan, without changing anything: the paths are not in the local
	// store, so top goes.
	f = base
	f.repair, f.dryRun = true, true
	out, _, code = run(f)
	if code != 1 || !strings.Contains(out, "remove 1 narinfos") {
		t.Fatalf("--repair --dry-run: exit %d\n%s", code, out)
	}
	if ok, _ := c.Has(ctx, top.HashPart+".narinfo"); !ok {
		t.Fatal("--dry-run deleted a narinfo")
	}

	for _, bad := range []verifyFlags{
		{},
		{store: "ftp://x"},
		{store: "file://" + dir + "/nonexistent", grace: 1},
		{store: base.store, grace: 1, trusted: listFlag{"not-a-key"}},
		{store: base.store, grace: 1, dryRun: true},
		{store: base.store, grace: 1, repair: true},
		{store: base.store},
	} {
		if _, _, code := run(bad); code != 2 {
			t.Errorf("flags %+v: exit %d, want 2", bad, code)
		}
	}
}
