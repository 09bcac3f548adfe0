package progress

import (
	"io"
	"strconv"
	"strings"
	"sync"
)

// Block redraws a multi-line view in place on a terminal: each Draw moves
// the cursor back to the first line of the previous one and erases it. The
// view is cut to the terminal's size, so that lines never wrap and the
// cursor never has to move above the top of the screen. Not on a terminal,
// Draw prints each view followed by an empty line. A Block is safe for
// concurrent use.
type Block struct {
	out      io.Writer
	terminal bool
	size     func() (width, height int)

	mu    sync.Mutex
	lines int // lines of the previous view on the screen
}

// NewBlock returns a Block writing to out; size reports the terminal's
// columns and rows (nil: 80 by 24).
func NewBlock(out io.Writer, terminal bool, size func() (width, height int)) *Block {
	return &Block{out: out, terminal: terminal, size: size}
}

// Draw replaces the previous view with text.
func (b *Block) Draw(text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if !b.terminal {
		_, _ = io.WriteString(b.out, strings.Join(lines, "\n")+"\n\n")
		return
	}
	w, h := DefaultWidth, 24
	if b.size != nil {
		if cw, ch := b.size(); cw > 0 && ch > 0 {
			w, h = cw, ch
		}
	}
	if len(lines) > h-1 {
		lines = append(lines[:h-2], "...")
	}
	var sb strings.Builder
	if b.lines > 0 {
		sb.WriteString("\x1b[" + strconv.Itoa(b.lines) + "A")
	}
	sb.WriteString("\r\x1b[J")
	for _, l := range lines {
		sb.WriteString(truncate(l, w-1))
		sb.WriteString("\n")
	}
	b.lines = len(lines)
	_, _ = io.WriteString(b.out, sb.String())
}
