package queue

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestHistoryAndCounters(t *testing.T) {
	clk := newClock()
	cfg := Config{Path: filepath.Join(t.TempDir(), "q.db"), Now: clk.Now, HistoryLimit: 3}
	q := openTest(t, cfg)
	outcomes := []Outcome{
		{Uploaded: 3, Bytes: 1000, Skipped: 2},
		{Dropped: true, Detail: "garbage-collected"},
		{Uploaded: 1, Bytes: 50},
		{Skipped: 7, Excluded: 2, HeldBack: 3},
		{Uploaded: 2, Bytes: 5, Skipped: 1, Excluded: 1, HeldBack: 1, HeldBy: "/nix/store/x-secret", Detail: "ok"},
		{Realisations: 2, Logs: 1},
	}
	var paths []string
	for i, out := range outcomes {
		p := fmt.Sprintf("/nix/store/p%d", i)
		paths = append(paths, p)
		enqueue(t, q, p)
		claim(t, q, 1)
		clk.Advance(time.Second)
		if err := q.Complete(p, out); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := q.Get(p); ok {
			t.Errorf("%s still queued after Complete", p)
		}
	}
	if err := q.Complete(paths[0], Outcome{}); err == nil {
		t.Error("completing a finished path succeeded")
	}
	want := Stats{Completed: 5, Dropped: 1, Uploaded: 6, Skipped: 10, UploadedBytes: 1055, Excluded: 3, HeldBack: 4, Realisations: 2, Logs: 1}
	if s := mustStats(t, q); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
	h, err := q.History(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 {
		t.Fatalf("history holds %d entries, want the limit 3", len(h))
	}
	for i, e := range h {
		j := len(outcomes) - 1 - i // newest first
		if e.Path != paths[j] || e.Outcome != outcomes[j] {
			t.Errorf("history[%d] = %+v, want %s %+v", i, e, paths[j], outcomes[j])
		}
	}
	if !h[0].Finished.Equal(clk.Now()) || !h[0].Finished.After(h[1].Finished) {
		t.Errorf("finished times %s, %s", h[0].Finished, h[1].Finished)
	}
	if h2, _ := q.History(2); len(h2) != 2 || h2[0].Path != paths[5] {
		t.Errorf("History(2) = %+v", h2)
	}

	// Counters survive a reopen; a lower limit trims at once.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.HistoryLimit = 2
	q = openTest(t, cfg)
	if s := mustStats(t, q); s != want {
		t.Errorf("stats after reopen %+v, want %+v", s, want)
	}
	if h, _ := q.History(0); len(h) != 2 || h[0].Path != paths[5] || h[1].Path != paths[4] {
		t.Errorf("history after reopen with limit 2: %+v", h)
	}
}

func TestOldestPending(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now})
	t0 := clk.Now()
	enqueue(t, q, "/nix/store/a")
	clk.Advance(time.Minute)
	enqueue(t, q, "/nix/store/b")
	if s := mustStats(t, q); !s.OldestPending.Equal(t0) {
		t.Errorf("oldest %s, want %s", s.OldestPending, t0)
	}
	claim(t, q, 1) // a, leased, still counts
	if s := mustStats(t, q); !s.OldestPending.Equal(t0) {
		t.Errorf("oldest with a leased %s, want %s", s.OldestPending, t0)
	}
	if err := q.Complete("/nix/store/a", Outcome{}); err != nil {
		t.Fatal(err)
	}
	if s := mustStats(t, q); !s.OldestPending.Equal(t0.Add(time.Minute)) {
		t.Errorf("oldest after completing a %s, want b's", s.OldestPending)
	}
	claim(t, q, 1)
	if _, err := q.Fail("/nix/store/b", "x", FailOptions{Permanent: true}); err != nil {
		t.Fatal(err)
	}
	if s := mustStats(t, q); !s.OldestPending.IsZero() {
		t.Errorf("oldest with only failed items %s, want zero", s.OldestPending)
	}
}

func TestItems(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now})
	enqueue(t, q, "/nix/store/c")
	clk.Advance(time.Second)
	enqueue(t, q, "/nix/store/a", "/nix/store/b", "/nix/store/d")
	claim(t, q, 2) // c, a
	tests := []struct {
		state State
		limit int
		want  []string
	}{
		{Pending, 0, []string{"/nix/store/b", "/nix/store/d"}},
		{Pending, 1, []string{"/nix/store/b"}},
		{Leased, 0, []string{"/nix/store/a", "/nix/store/c"}},
		{Failed, 0, nil},
		{"", 3, []string{"/nix/store/a", "/nix/store/b", "/nix/store/c"}},
	}
	for _, tt := range tests {
		items, err := q.Items(tt.state, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range items {
			got = append(got, it.Path)
			if tt.state != "" && it.State != tt.state {
				t.Errorf("Items(%s) returned a %s item", tt.state, it.State)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Items(%q, %d) = %v, want %v", tt.state, tt.limit, got, tt.want)
		}
	}
	if _, err := q.Items("bogus", 0); err == nil {
		t.Error("Items accepted an unknown state")
	}
}
