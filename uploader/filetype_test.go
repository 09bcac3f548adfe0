package uploader

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
)

// A FIFO inside a store path makes its upload fail permanently at once:
// no NAR can hold it, so the eight retries of a transient error are moot.
func TestFIFOInStorePathIsPermanent(t *testing.T) {
	s := newFakeStore(t)
	p := s.add(t, "with-fifo", map[string]string{"f": "x"})
	if err := syscall.Mkfifo(filepath.Join(p, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	cache := newFakeCache()
	u := newTestUploader(t, testConfig(s.dir), cache, s, nil, nil)
	_, err := u.Upload(context.Background(), p)
	if err == nil {
		t.Fatal("upload of a path holding a FIFO succeeded")
	}
	c := Classify(err)
	if !c.Permanent || c.Code != "file_type" {
		t.Errorf("Classify(%v) = %+v, want permanent file_type", err, c)
	}
	if _, ok := cache.object(keyOf(t, s.dir, p)); ok {
		t.Error("narinfo published for a path that cannot be archived")
	}
}
