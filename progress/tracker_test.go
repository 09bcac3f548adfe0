package progress

import (
	"errors"
	"testing"
)

func TestTracker(t *testing.T) {
	tr := NewTracker()
	// Two roots share b; c is present.
	tr.Planned("a", []string{"a", "b", "c"}, map[string]uint64{"a": 100, "b": 1000})
	tr.Planned("x", []string{"x", "b"}, map[string]uint64{"x": 10, "b": 1000})
	tr.Finished("unrelated", nil)

	active := []Transfer{{Path: "b", Size: 1000, Done: 400}, {Path: "a", Size: 100, Done: 50}, {Path: "other", Size: 1 << 30, Done: 1}}
	got := tr.Snapshot([]string{"a"}, active)
	want := Snapshot{PathsTotal: 3, Present: 1, BytesTotal: 1100, BytesDone: 450, Largest: Transfer{Path: "b", Size: 1000, Done: 400}}
	if got != want {
		t.Errorf("a: %+v\nwant %+v", got, want)
	}

	// a's stream ended; its narinfo is not written yet: its bytes still count.
	got = tr.Snapshot([]string{"a"}, active[:1])
	if got.BytesDone != 450 {
		t.Errorf("BytesDone %d after a's stream ended, want 450", got.BytesDone)
	}

	tr.Finished("b", nil)
	tr.Finished("a", errors.New("boom"))
	got = tr.Snapshot(nil, nil)
	want = Snapshot{PathsTotal: 4, Present: 1, Uploaded: 1, Failed: 1, BytesTotal: 1110, BytesDone: 1000}
	if got != want {
		t.Errorf("all: %+v\nwant %+v", got, want)
	}

	// A retry of a replaces its plan and forgets its failure.
	tr.Planned("a", []string{"a", "b", "c"}, map[string]uint64{"a": 100})
	got = tr.Snapshot([]string{"a"}, nil)
	want = Snapshot{PathsTotal: 3, Present: 2, BytesTotal: 100}
	if got != want {
		t.Errorf("replanned a: %+v\nwant %+v", got, want)
	}

	tr.Forget("a")
	tr.Forget("x")
	if len(tr.plans)+len(tr.wanted)+len(tr.finished)+len(tr.streamed) != 0 {
		t.Errorf("after forgetting every root: %d plans, %d wanted, %d finished", len(tr.plans), len(tr.wanted), len(tr.finished))
	}
	if tr.Has("a") {
		t.Error("Has(a) after Forget")
	}
}

func TestTrackerFollow(t *testing.T) {
	tr := NewTracker()
	if !tr.Follows("a") {
		t.Error("a new tracker does not follow every root")
	}
	tr.SetFollow(func(root string) bool { return root == "b" })
	if tr.Follows("a") || !tr.Follows("b") {
		t.Error("SetFollow not obeyed")
	}
}
