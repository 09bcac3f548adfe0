package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultRedraw   = 200 * time.Millisecond
	DefaultInterval = 5 * time.Second
	DefaultWindow   = 10 * time.Second
	DefaultWidth    = 80
)

// Config configures a Display. Zero fields take the documented defaults.
type Config struct {
	// Out receives the output; required.
	Out io.Writer
	// Terminal selects the live line; false selects plain lines.
	Terminal bool
	// Size returns the terminal's columns and rows; nil, or a width of 0
	// or less, means DefaultWidth columns. Only the width is used here.
	Size func() (width, height int)
	// Redraw is the least time between two redraws of the live line,
	// default 200ms.
	Redraw time.Duration
	// Interval is the time between two plain lines, default 5s.
	Interval time.Duration
	// Window is how far back the rate is measured, default 10s.
	Window time.Duration
	// Now is the clock, default time.Now.
	Now func() time.Time
	// Prefix starts every plain line and the summary, e.g. "nixs3q copy: ".
	Prefix string
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Out == nil:
		return fmt.Errorf("progress: no output writer")
	case c.Redraw < 0 || c.Interval < 0 || c.Window < 0:
		return fmt.Errorf("progress: negative interval")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Redraw == 0 {
		c.Redraw = DefaultRedraw
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Display renders Snapshots; see the package documentation. Create it with
// New.
type Display struct {
	cfg Config

	mu       sync.Mutex
	start    time.Time
	samples  []sample // BytesDone over the last Window, oldest first
	last     time.Time
	printed  bool // a line was written at all
	live     bool // a live line is on the screen
	finished bool
}

type sample struct {
	at    time.Time
	bytes int64
}

// New returns a Display that starts its clock now. It panics on an invalid
// Config (a programming error).
func New(cfg Config) *Display {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	return &Display{cfg: cfg, start: cfg.Now()}
}

// Update records s. On a terminal it redraws the live line unless it was
// drawn less than Redraw ago; otherwise it prints a plain line when the
// last one is at least Interval old (the first one after Interval).
// Updates after Finish are ignored.
func (d *Display) Update(s Snapshot) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.finished {
		return
	}
	now := d.cfg.Now()
	d.addSample(now, s.BytesDone)
	if d.cfg.Terminal {
		if d.printed && now.Sub(d.last) < d.cfg.Redraw {
			return
		}
		d.drawLive(now, s)
		return
	}
	from := d.last
	if !d.printed {
		from = d.start
	}
	if now.Sub(from) < d.cfg.Interval {
		return
	}
	d.write(d.cfg.Prefix + d.line(now, s, false) + "\n")
	d.last = now
}

// Println prints a message on a line of its own: on a terminal it takes
// the live line's place, and the live line is drawn again below it by the
// next Update.
func (d *Display) Println(msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clearLive()
	d.write(msg + "\n")
}

// Write writes p like Println, for loggers: a log line never lands in the
// middle of the live line. p should end with a newline. It never fails.
func (d *Display) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clearLive()
	d.write(string(p))
	return len(p), nil
}

// Finish clears the live line and prints the summary of s:
// how long it took, what was uploaded, what was present, what failed.
// Later calls do nothing.
func (d *Display) Finish(s Snapshot) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.finished {
		return
	}
	d.finished = true
	d.clearLive()
	d.write(d.cfg.Prefix + d.summary(d.cfg.Now(), s) + "\n")
}

func (d *Display) drawLive(now time.Time, s Snapshot) {
	line := truncate(d.line(now, s, true), d.width()-1)
	d.write("\r" + line + "\x1b[K")
	d.live = true
	d.printed = true
	d.last = now
}

func (d *Display) clearLive() {
	if d.live {
		d.write("\r\x1b[K")
		d.live = false
	}
}

func (d *Display) write(s string) {
	d.printed = true
	_, _ = io.WriteString(d.cfg.Out, s)
}

func (d *Display) width() int {
	if d.cfg.Size != nil {
		if w, _ := d.cfg.Size(); w > 0 {
			return w
		}
	}
	return DefaultWidth
}

func (d *Display) addSample(now time.Time, bytes int64) {
	d.samples = append(d.samples, sample{now, bytes})
	// Keep one sample older than the window as the base of the rate.
	i := 0
	for i+1 < len(d.samples) && now.Sub(d.samples[i+1].at) >= d.cfg.Window {
		i++
	}
	d.samples = d.samples[i:]
}

// rate is the NAR bytes per second over the window; ok is false while the
// samples span less than a second.
func (d *Display) rate() (perSec float64, ok bool) {
	if len(d.samples) < 2 {
		return 0, false
	}
	first, last := d.samples[0], d.samples[len(d.samples)-1]
	span := last.at.Sub(first.at)
	if span < time.Second {
		return 0, false
	}
	return float64(last.bytes-first.bytes) / span.Seconds(), true
}

// line is the one-line view of s. short names the largest upload by its
// short name (the live line), else by its full path (logs).
func (d *Display) line(now time.Time, s Snapshot, short bool) string {
	var parts []string
	if s.PathsTotal > 0 {
		parts = append(parts, fmt.Sprintf("%d/%d paths", s.Done(), s.PathsTotal))
	} else {
		parts = append(parts, fmt.Sprintf("%d paths", s.Done()))
	}
	if s.BytesTotal > 0 {
		parts = append(parts, fmt.Sprintf("%s of %s", Bytes(s.BytesDone), Bytes(s.BytesTotal)))
	} else if s.BytesDone > 0 {
		parts = append(parts, Bytes(s.BytesDone))
	}
	if r, ok := d.rate(); ok && (s.BytesTotal > 0 || s.BytesDone > 0) {
		parts = append(parts, Bytes(int64(r))+"/s")
		if left := s.BytesTotal - s.BytesDone; left > 0 && r > 0 {
			parts = append(parts, "ETA "+Duration(time.Duration(float64(left)/r*float64(time.Second))))
		}
	}
	if s.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", s.Failed))
	}
	if s.Note != "" {
		parts = append(parts, s.Note)
	}
	if t := s.Largest; t.Path != "" {
		name := t.Path
		if short {
			name = ShortName(name)
		}
		parts = append(parts, fmt.Sprintf("uploading %s (%d%% of %s)", name, percent(t.Done, t.Size), Bytes(t.Size)))
	}
	if !short {
		parts = append(parts, Duration(now.Sub(d.start))+" elapsed")
	}
	return strings.Join(parts, ", ")
}

func (d *Display) summary(now time.Time, s Snapshot) string {
	took := now.Sub(d.start)
	out := fmt.Sprintf("%d/%d paths done in %s: %d uploaded (%s of NAR", s.Done(), max(s.PathsTotal, s.Done()), Duration(took), s.Uploaded, Bytes(s.BytesDone))
	if took > 0 && s.BytesDone > 0 {
		out += fmt.Sprintf(", %s/s", Bytes(int64(float64(s.BytesDone)/took.Seconds())))
	}
	out += fmt.Sprintf("), %d already in the cache", s.Present)
	if s.Failed > 0 {
		out += fmt.Sprintf(", %d failed", s.Failed)
	}
	return out
}

// truncate cuts s to at most n runes, marking the cut with "...".
func truncate(s string, n int) string {
	r := []rune(s)
	if n <= 0 || len(r) <= n {
		return s
	}
	if n <= 3 {
		return string(r[:n])
	}
	return string(r[:n-3]) + "..."
}
