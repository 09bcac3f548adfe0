package progress

import (
	"os"

	"golang.org/x/term"
)

// Terminal reports whether f is a terminal that understands the cursor
// movements a live display uses (TERM is not "dumb"), and returns a
// function that reads its current size.
func Terminal(f *os.File) (ok bool, size func() (width, height int)) {
	fd := int(f.Fd())
	if !term.IsTerminal(fd) || os.Getenv("TERM") == "dumb" {
		return false, nil
	}
	return true, func() (int, int) {
		w, h, err := term.GetSize(fd)
		if err != nil {
			return 0, 0
		}
		return w, h
	}
}
