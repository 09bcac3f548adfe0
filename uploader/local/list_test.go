package local_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/local"
)

// TestPending checks that a crashed writer's temporary files are reported
// as pending writes of the key they were meant for, never listed as
// objects, and removed by AbortPending, which refuses to remove objects.
func TestPending(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s2, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Put(context.Background(), "nar/kept.nar.zst", bytes.NewReader([]byte("nar")), uploader.PutOptions{Size: 3}); err != nil {
		t.Fatal(err)
	}
	leftovers := map[string]string{
		"nar/.tmp-abc.nar.zst-123456": "nar/abc.nar.zst",
		".tmp-x.narinfo-99":           "x.narinfo",
		"log/.tmp-h-hello.drv-7":      "log/h-hello.drv",
	}
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	for name := range leftovers {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	// Not a temporary file of ours: never reported, never removable.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-notours"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	var objects []string
	if err := s2.List(context.Background(), "", func(o uploader.Object) error {
		objects = append(objects, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(objects) != 1 || objects[0] != "nar/kept.nar.zst" {
		t.Fatalf("List = %v, want only nar/kept.nar.zst", objects)
	}

	got := map[string]uploader.PendingUpload{}
	if err := s2.ListPending(context.Background(), "", func(p uploader.PendingUpload) error {
		got[p.ID] = p
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(leftovers) {
		t.Fatalf("ListPending = %v, want %d entries", got, len(leftovers))
	}
	for id, key := range leftovers {
		p, ok := got[id]
		if !ok || p.Key != key || !p.Started.Equal(old) {
			t.Errorf("ListPending: %s = %+v, %v; want key %s started %v", id, p, ok, key, old)
		}
	}
	var narOnly int
	if err := s2.ListPending(context.Background(), "nar/", func(uploader.PendingUpload) error { narOnly++; return nil }); err != nil || narOnly != 1 {
		t.Fatalf("ListPending(nar/) = %d entries, %v; want 1", narOnly, err)
	}

	for _, bad := range []uploader.PendingUpload{{Key: "nar/kept.nar.zst", ID: "nar/kept.nar.zst"}, {ID: ".tmp-notours"}, {ID: "../.tmp-x-1"}} {
		if err := s2.AbortPending(context.Background(), bad); err == nil {
			t.Errorf("AbortPending(%+v) succeeded, want a refusal", bad)
		}
	}
	for _, p := range got {
		if err := s2.AbortPending(context.Background(), p); err != nil {
			t.Fatalf("AbortPending(%s): %v", p.ID, err)
		}
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p.ID))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after AbortPending: %v", p.ID, err)
		}
		if err := s2.AbortPending(context.Background(), p); err != nil {
			t.Errorf("second AbortPending(%s) = %v, want nil", p.ID, err)
		}
	}
	if ok, err := s2.Has(context.Background(), "nar/kept.nar.zst"); !ok || err != nil {
		t.Fatalf("the object was touched: Has = %v, %v", ok, err)
	}
}
