// Package vt is the part of a terminal emulator that tests need to check
// what a person sees of nixs3q's progress displays: printable characters,
// CR, LF (as CR LF, which is what a tty's line discipline makes of it),
// cursor up (ESC [ n A), erase to end of line (ESC [ K) and erase to end of
// screen (ESC [ J). Other escape sequences are read and ignored.
package vt

import (
	"strconv"
	"strings"
	"sync"
)

// Screen is a terminal screen of fixed size, fed by Write. It is safe for
// concurrent use.
type Screen struct {
	mu       sync.Mutex
	w, h     int
	rows     [][]rune
	r, c     int
	wrapped  bool
	esc      []byte // an escape sequence being read
	inEscape bool
	pending  []byte // an incomplete UTF-8 sequence
}

// New returns a blank screen of w columns and h rows.
func New(w, h int) *Screen {
	s := &Screen{w: w, h: h}
	for range h {
		s.rows = append(s.rows, blankRow(w))
	}
	return s
}

func blankRow(w int) []rune { return []rune(strings.Repeat(" ", w)) }

// Write interprets p; it never fails.
func (s *Screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data := append(s.pending, p...)
	s.pending = nil
	for len(data) > 0 {
		b := data[0]
		if s.inEscape {
			s.esc = append(s.esc, b)
			data = data[1:]
			if len(s.esc) >= 2 && (s.esc[1] != '[' || len(s.esc) >= 3) && b >= 0x40 && b <= 0x7e {
				s.apply(string(s.esc))
				s.inEscape, s.esc = false, nil
			}
			continue
		}
		switch b {
		case 0x1b:
			s.inEscape, s.esc = true, []byte{b}
			data = data[1:]
			continue
		case '\r':
			s.c = 0
			data = data[1:]
			continue
		case '\n': // as a tty's ONLCR output: CR LF
			s.c = 0
			s.lineFeed()
			data = data[1:]
			continue
		}
		str := string(data)
		r := []rune(str)[0]
		n := len(string(r))
		if r == 0xFFFD && !strings.HasPrefix(str, "\uFFFD") {
			if len(data) < 4 { // incomplete sequence: wait for the rest
				s.pending = append([]byte(nil), data...)
				break
			}
		}
		s.put(r)
		data = data[n:]
	}
	return len(p), nil
}

func (s *Screen) put(r rune) {
	if s.c >= s.w {
		s.wrapped = true
		s.c = 0
		s.lineFeed()
	}
	s.rows[s.r][s.c] = r
	s.c++
}

func (s *Screen) lineFeed() {
	if s.r == s.h-1 {
		s.rows = append(s.rows[1:], blankRow(s.w))
		return
	}
	s.r++
}

func (s *Screen) apply(seq string) {
	if !strings.HasPrefix(seq, "\x1b[") {
		return
	}
	body, final := seq[2:len(seq)-1], seq[len(seq)-1]
	n, err := strconv.Atoi(body)
	if err != nil {
		n = 1
	}
	switch final {
	case 'A':
		s.r = max(0, s.r-n)
	case 'K':
		for i := s.c; i < s.w; i++ {
			s.rows[s.r][i] = ' '
		}
	case 'J':
		for i := s.c; i < s.w; i++ {
			s.rows[s.r][i] = ' '
		}
		for r := s.r + 1; r < s.h; r++ {
			s.rows[r] = blankRow(s.w)
		}
	}
}

// Wrapped reports whether any line ran past the last column.
func (s *Screen) Wrapped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wrapped
}

// String returns the screen's text, trailing blanks and blank lines cut.
func (s *Screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lines []string
	for _, row := range s.rows {
		lines = append(lines, strings.TrimRight(string(row), " "))
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}
