package queue

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func backlogPaths(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("/nix/store/backlog-%03d", i))
	}
	return out
}

func TestClaimServesMarkedPathsFirst(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now})
	enqueue(t, q, backlogPaths(20)...)
	clk.Advance(time.Second)
	enqueue(t, q, "/nix/store/mine-b", "/nix/store/mine-a")
	unmark := q.Prioritize([]string{"/nix/store/mine-a", "/nix/store/mine-b", "/nix/store/not-queued"})
	defer unmark()
	if n := q.Urgent(); n != 3 {
		t.Errorf("Urgent() = %d, want 3", n)
	}
	// A claim of 8 keeps 2 for the backlog; the two marked paths fit.
	got := claim(t, q, 8)
	want := append([]string{"/nix/store/mine-a", "/nix/store/mine-b"}, backlogPaths(6)...)
	if !slices.Equal(got, want) {
		t.Fatalf("claimed %v\nwant %v", got, want)
	}
	// Nothing marked is due: plain order.
	if got := claim(t, q, 2); !slices.Equal(got, backlogPaths(8)[6:]) {
		t.Errorf("claimed %v, want the backlog in order", got)
	}
}

func TestClaimKeepsAShareForTheBacklog(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now})
	enqueue(t, q, backlogPaths(3)...)
	clk.Advance(time.Second)
	var mine []string
	for i := range 20 {
		mine = append(mine, fmt.Sprintf("/nix/store/mine-%03d", i))
	}
	enqueue(t, q, mine...)
	defer q.Prioritize(mine)()

	// Claims of 8: 6 marked and 2 from the backlog each time, until the
	// backlog is empty; then marked paths take the whole claim.
	got := claim(t, q, 8)
	if want := append(slices.Clone(mine[:6]), backlogPaths(2)...); !slices.Equal(got, want) {
		t.Fatalf("first claim %v\nwant %v", got, want)
	}
	got = claim(t, q, 8)
	if want := append(slices.Clone(mine[6:13]), backlogPaths(3)[2]); !slices.Equal(got, want) {
		t.Fatalf("second claim %v\nwant %v", got, want)
	}
	if got := claim(t, q, 8); !slices.Equal(got, mine[13:]) {
		t.Fatalf("third claim %v, want the rest of the marked paths", got)
	}
}

func TestClaimOfOneTakesTurns(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now})
	enqueue(t, q, backlogPaths(10)...)
	var mine []string
	for i := range 10 {
		mine = append(mine, fmt.Sprintf("/nix/store/mine-%03d", i))
	}
	enqueue(t, q, mine...)
	defer q.Prioritize(mine)()
	backlog := 0
	for range 8 {
		got := claim(t, q, 1)
		if len(got) != 1 {
			t.Fatalf("claimed %v", got)
		}
		if !slices.Contains(mine, got[0]) {
			backlog++
		}
	}
	if backlog != 2 {
		t.Errorf("%d of 8 single claims went to the backlog, want every fourth (2)", backlog)
	}
}

func TestClaimUrgentOnlyMarked(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now, BackoffBase: time.Minute, BackoffMax: time.Minute})
	enqueue(t, q, backlogPaths(5)...)
	if got, err := q.ClaimUrgent(10); err != nil || len(got) != 0 {
		t.Fatalf("ClaimUrgent with nothing marked: %v, %v", got, err)
	}
	enqueue(t, q, "/nix/store/mine")
	unmark := q.Prioritize([]string{"/nix/store/mine"})
	got, err := q.ClaimUrgent(10)
	if err != nil || len(got) != 1 || got[0].Path != "/nix/store/mine" || got[0].State != Leased {
		t.Fatalf("ClaimUrgent: %v, %v", got, err)
	}
	// A marked path retried later is not due before its time.
	if _, err := q.Fail("/nix/store/mine", "timeout", FailOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.ClaimUrgent(10); len(got) != 0 {
		t.Fatalf("claimed %v before its retry was due", got)
	}
	clk.Advance(time.Minute)
	if got, _ := q.ClaimUrgent(10); len(got) != 1 {
		t.Fatalf("claimed %v once due, want mine", got)
	}
	unmark()
	unmark() // a second call changes nothing
	if n := q.Urgent(); n != 0 {
		t.Errorf("Urgent() = %d after unmarking", n)
	}
	if got := claim(t, q, 10); len(got) != 5 {
		t.Errorf("claimed %v, want the 5 backlog paths", got)
	}
}

func TestPrioritizeCounts(t *testing.T) {
	q := openTest(t, Config{})
	u1 := q.Prioritize([]string{"/nix/store/a", "/nix/store/a"})
	u2 := q.Prioritize([]string{"/nix/store/a"})
	u1()
	if n := q.Urgent(); n != 1 {
		t.Fatalf("Urgent() = %d while a second waiter marks a", n)
	}
	u2()
	if n := q.Urgent(); n != 0 {
		t.Fatalf("Urgent() = %d after both waiters left", n)
	}
}

func TestStates(t *testing.T) {
	clk := newClock()
	q := openTest(t, Config{Now: clk.Now, HistoryLimit: 5})
	enqueue(t, q, "/nix/store/done", "/nix/store/dropped", "/nix/store/failed", "/nix/store/pending")
	claim(t, q, 3) // done, dropped, failed (path order at equal due times)
	if err := q.Complete("/nix/store/done", Outcome{Uploaded: 3, Skipped: 1, Bytes: 99}); err != nil {
		t.Fatal(err)
	}
	if err := q.Complete("/nix/store/dropped", Outcome{Dropped: true, Detail: "gone"}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Fail("/nix/store/failed", "access denied", FailOptions{Permanent: true}); err != nil {
		t.Fatal(err)
	}
	// The done path is queued and finished again: its newest entry counts.
	enqueue(t, q, "/nix/store/done")
	claim(t, q, 1)
	clk.Advance(time.Second)
	if err := q.Complete("/nix/store/done", Outcome{Skipped: 4}); err != nil {
		t.Fatal(err)
	}
	paths := []string{"/nix/store/done", "/nix/store/dropped", "/nix/store/failed", "/nix/store/pending", "/nix/store/unknown", "/nix/store/done"}
	st, err := q.States(paths)
	if err != nil {
		t.Fatal(err)
	}
	check := func(i int, queued, finished bool) {
		t.Helper()
		if st[i].Path != paths[i] || st[i].Queued != queued || st[i].Finished != finished {
			t.Errorf("%s: %+v, want queued=%v finished=%v", paths[i], st[i], queued, finished)
		}
	}
	check(0, false, true)
	check(1, false, true)
	check(2, true, false)
	check(3, true, false)
	check(4, false, false)
	check(5, false, true)
	if o := st[0].Entry.Outcome; o.Skipped != 4 || o.Uploaded != 0 || !st[0].Entry.Finished.Equal(clk.Now()) {
		t.Errorf("done: outcome %+v at %s, want the newest entry", o, st[0].Entry.Finished)
	}
	if !st[1].Entry.Outcome.Dropped || st[2].Item.State != Failed || st[2].Item.LastError != "access denied" || st[3].Item.State != Pending {
		t.Errorf("states %+v", st)
	}
	// Beyond the history's limit a path is forgotten.
	var fillers []string
	for i := range 5 {
		fillers = append(fillers, fmt.Sprintf("/nix/store/filler-%d", i))
	}
	enqueue(t, q, fillers...)
	claim(t, q, 10)
	for _, p := range fillers {
		if err := q.Complete(p, Outcome{}); err != nil {
			t.Fatal(err)
		}
	}
	st, err = q.States([]string{"/nix/store/done"})
	if err != nil || st[0].Finished || st[0].Queued {
		t.Errorf("after the history moved on: %+v, %v", st, err)
	}
}
