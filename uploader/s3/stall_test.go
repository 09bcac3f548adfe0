package s3_test

import (
	"bytes"
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
)

// A server that accepts an upload and then goes silent (reads nothing,
// answers nothing) does not hold the upload: the connection is given up
// after StallTimeout, and the retry succeeds.
func TestStalledServerIsGivenUp(t *testing.T) {
	setCredentials(t)
	var stalled atomic.Bool
	release := make(chan struct{})
	f := newFakeS3(t, func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.Method == http.MethodPut && stalled.CompareAndSwap(false, true) {
			select { // neither read the body nor answer
			case <-release:
			case <-r.Context().Done():
			}
			return true
		}
		return false
	})
	t.Cleanup(func() { close(release) }) // before the server's Close, which waits for handlers
	cfg := testConfig(f.srv.URL)
	cfg.StallTimeout = 300 * time.Millisecond
	store := newStore(t, cfg)
	body := bytes.Repeat([]byte("nixs3q"), 200_000)
	start := time.Now()
	err := store.Put(context.Background(), "nar/stall.nar", bytes.NewReader(body), uploader.PutOptions{ContentType: "application/x-nix-nar", Size: int64(len(body))})
	if err != nil {
		t.Fatalf("put after a stalled attempt: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("stalled attempt held the upload for %v", took)
	}
	if !stalled.Load() {
		t.Fatal("the stall was never injected")
	}
	rc, err := store.Get(context.Background(), "nar/stall.nar")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	got.ReadFrom(rc)
	if !bytes.Equal(got.Bytes(), body) {
		t.Fatal("stored object differs")
	}
}
