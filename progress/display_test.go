package progress

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/internal/vt"
)

// clock is a fake clock that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

const mib = 1 << 20

func TestPlainLinesEveryInterval(t *testing.T) {
	var out bytes.Buffer
	c := newClock()
	d := New(Config{Out: &out, Now: c.Now, Interval: 5 * time.Second, Prefix: "nixs3q copy: "})
	s := Snapshot{PathsTotal: 10, BytesTotal: 100 * mib}
	for i := 1; i <= 12; i++ { // one update a second for 12 s at 5 MiB/s
		c.Advance(time.Second)
		s.BytesDone = int64(i) * 5 * mib
		if i%3 == 0 {
			s.Uploaded++
		}
		s.Largest = Transfer{Path: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-big", Size: 60 * mib, Done: int64(i) * 5 * mib}
		d.Update(s)
	}
	s.Largest = Transfer{}
	s.Uploaded, s.Present, s.Failed = 7, 2, 1
	s.BytesDone = 80 * mib
	c.Advance(4 * time.Second)
	d.Finish(s)
	d.Update(s) // ignored after Finish

	want := "" +
		"nixs3q copy: 1/10 paths, 25.0 MiB of 100.0 MiB, 5.0 MiB/s, ETA 15s, uploading /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-big (41% of 60.0 MiB), 5.0s elapsed\n" +
		"nixs3q copy: 3/10 paths, 50.0 MiB of 100.0 MiB, 5.0 MiB/s, ETA 10s, uploading /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-big (83% of 60.0 MiB), 10s elapsed\n" +
		"nixs3q copy: 10/10 paths done in 16s: 7 uploaded (80.0 MiB of NAR, 5.0 MiB/s), 2 already in the cache, 1 failed\n"
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(out.String(), "\x1b") || strings.Contains(out.String(), "\r") {
		t.Error("plain output contains terminal control characters")
	}
}

func TestPlainSilentBeforeFirstInterval(t *testing.T) {
	var out bytes.Buffer
	c := newClock()
	d := New(Config{Out: &out, Now: c.Now})
	for range 4 {
		c.Advance(time.Second)
		d.Update(Snapshot{PathsTotal: 1})
	}
	if out.Len() != 0 {
		t.Fatalf("printed before the first interval: %q", out.String())
	}
	c.Advance(time.Second)
	d.Update(Snapshot{PathsTotal: 1})
	if got, want := out.String(), "0/1 paths, 5.0s elapsed\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLiveLineThrottledAndCleared(t *testing.T) {
	var out bytes.Buffer
	c := newClock()
	d := New(Config{Out: &out, Now: c.Now, Terminal: true, Size: func() (int, int) { return 200, 50 }})
	d.Update(Snapshot{PathsTotal: 3})
	c.Advance(100 * time.Millisecond)
	d.Update(Snapshot{PathsTotal: 3, Present: 1}) // within Redraw: not drawn
	c.Advance(150 * time.Millisecond)
	d.Update(Snapshot{PathsTotal: 3, Present: 2})
	d.Println("a message")
	c.Advance(time.Second)
	d.Update(Snapshot{PathsTotal: 3, Present: 2})
	fmt.Fprintf(d, "a log line\n")
	c.Advance(time.Second)
	d.Finish(Snapshot{PathsTotal: 3, Present: 3})
	want := "" +
		"\r0/3 paths\x1b[K" +
		"\r2/3 paths\x1b[K" +
		"\r\x1b[Ka message\n" +
		"\r2/3 paths\x1b[K" +
		"\r\x1b[Ka log line\n" +
		"3/3 paths done in 2.2s: 0 uploaded (0 B of NAR), 3 already in the cache\n"
	if got := out.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestLiveLineFitsTheTerminal(t *testing.T) {
	var out bytes.Buffer
	c := newClock()
	d := New(Config{Out: &out, Now: c.Now, Terminal: true, Size: func() (int, int) { return 40, 10 }})
	d.Update(Snapshot{PathsTotal: 3, BytesTotal: 10 * mib, BytesDone: mib,
		Largest: Transfer{Path: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a-rather-long-name-1.0", Size: 10 * mib, Done: mib}})
	line := strings.TrimSuffix(strings.TrimPrefix(out.String(), "\r"), "\x1b[K")
	if n := len([]rune(line)); n != 39 {
		t.Errorf("live line is %d columns on a 40-column terminal: %q", n, line)
	}
	if !strings.HasSuffix(line, "...") {
		t.Errorf("cut line not marked: %q", line)
	}
}

func TestRateAndETA(t *testing.T) {
	var out bytes.Buffer
	c := newClock()
	d := New(Config{Out: &out, Now: c.Now, Window: 4 * time.Second, Interval: time.Hour})
	// 1 MiB/s for 10 s, then 4 MiB/s: the rate follows the window.
	var done int64
	for range 10 {
		c.Advance(time.Second)
		done += mib
		d.Update(Snapshot{BytesDone: done, BytesTotal: 100 * mib})
	}
	if r, _ := d.rate(); r != mib {
		t.Errorf("rate %v, want 1 MiB/s", r)
	}
	for range 5 {
		c.Advance(time.Second)
		done += 4 * mib
		d.Update(Snapshot{BytesDone: done, BytesTotal: 100 * mib})
	}
	if r, _ := d.rate(); r != 4*mib {
		t.Errorf("rate %v, want 4 MiB/s", r)
	}
	line := d.line(c.Now(), Snapshot{BytesDone: done, BytesTotal: 100 * mib}, true)
	if want := "0 paths, 30.0 MiB of 100.0 MiB, 4.0 MiB/s, ETA 18s"; line != want {
		t.Errorf("line %q, want %q", line, want)
	}
}

func TestNoRateWithinFirstSecond(t *testing.T) {
	c := newClock()
	d := New(Config{Out: &bytes.Buffer{}, Now: c.Now})
	d.Update(Snapshot{BytesDone: 0})
	c.Advance(500 * time.Millisecond)
	d.Update(Snapshot{BytesDone: mib})
	if _, ok := d.rate(); ok {
		t.Error("rate reported from half a second of samples")
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Bytes(0), "0 B"},
		{Bytes(1023), "1023 B"},
		{Bytes(1536), "1.5 KiB"},
		{Bytes(3 << 30), "3.0 GiB"},
		{Duration(1500 * time.Millisecond), "1.5s"},
		{Duration(42 * time.Second), "42s"},
		{Duration(185 * time.Second), "3m05s"},
		{Duration(2*time.Hour + 10*time.Minute), "2h10m"},
		{Duration(-time.Second), "0.0s"},
		{ShortName("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12"), "0123456-hello-2.12"},
		{ShortName("not-a-store-path"), "not-a-store-path"},
		{truncate("héllo wörld", 8), "héllo..."},
		{truncate("short", 8), "short"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err == nil {
		t.Error("a Config without Out is valid")
	}
	if err := (Config{Out: &bytes.Buffer{}, Interval: -1}).Validate(); err == nil {
		t.Error("a negative interval is valid")
	}
	if err := (Config{Out: &bytes.Buffer{}}).Validate(); err != nil {
		t.Errorf("zero Config with Out: %v", err)
	}
}

func TestBlockPlain(t *testing.T) {
	var out bytes.Buffer
	b := NewBlock(&out, false, nil)
	b.Draw("a\nb\n")
	b.Draw("c")
	if got, want := out.String(), "a\nb\n\nc\n\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBlockRedrawsInPlace(t *testing.T) {
	scr := vt.New(20, 6)
	b := NewBlock(scr, true, func() (int, int) { return 20, 6 })
	b.Draw("queue: 5 pending\nuploading:\n  a very long line that does not fit\n")
	b.Draw("queue: 0 pending\n")
	if got, want := scr.String(), "queue: 0 pending"; got != want {
		t.Errorf("screen:\n%s\nwant:\n%s", got, want)
	}
	b.Draw("1\n2\n3\n4\n5\n6\n7\n8\n")
	if got, want := scr.String(), "1\n2\n3\n4\n..."; got != want {
		t.Errorf("screen:\n%s\nwant:\n%s", got, want)
	}
	if scr.Wrapped() {
		t.Error("a line wrapped")
	}
}
