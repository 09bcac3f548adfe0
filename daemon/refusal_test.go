package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/hook"
)

// A request with 15,000 invalid paths gets an answer listing the first
// MaxRefusals of them and the count, not "reply too large". The hook then
// gets its valid paths to the daemon: sent again after a few refusals, or
// spooled with the unsorted rest, whose invalid paths ingestion drops.
func TestManyRefusalsListedAndCounted(t *testing.T) {
	e := start(t, &fakeUploader{})
	good := e.storePath("good")
	var paths []string
	for i := range 15_000 {
		paths = append(paths, fmt.Sprintf("/not/in/the/store/%06d-%s", i, strings.Repeat("x", 100)))
	}
	// A long timeout: validating 15,000 paths under the race detector on a
	// loaded machine takes a while.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := hook.Dial(ctx, e.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Enqueue(ctx, hook.EnqueueRequest{Paths: append([]string{good}, paths...), Source: "push"})
	var refused *hook.RefusedError
	if !errors.As(err, &refused) || refused.Invalid() != 15_000 || len(refused.Refused) != hook.MaxRefusals {
		t.Fatalf("answer: %v", err)
	}
	if refused.Refused[0].Path != paths[0] || !strings.Contains(err.Error(), "15000 of 15001") {
		t.Errorf("answer: first refusal %+v, error %q", refused.Refused[0], err)
	}
	if st, _ := e.q.Stats(); st.Pending+st.Leased != 0 {
		t.Fatalf("a refused request changed the queue: %+v", st)
	}

	good2 := e.storePath("good2")
	out := hook.Run(context.Background(), hook.Config{Socket: e.socket, StateDir: e.stateDir,
		OutPaths: strings.Join(append(paths, good, good2), " "), Timeout: 20 * time.Second})
	if !strings.Contains(out.Message, "and 14999 more") {
		t.Fatalf("hook outcome: spooled %q, message %q", out.Spooled, out.Message)
	}
	e.waitFor("both valid paths uploaded, the spool read", func(s *hook.Status) bool { return s.Completed == 2 && s.Spooled == 0 })
	if e.up.count(good) != 1 || e.up.count(good2) != 1 {
		t.Errorf("valid paths not uploaded once each: %d, %d", e.up.count(good), e.up.count(good2))
	}
}
