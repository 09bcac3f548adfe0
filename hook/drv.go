package hook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxDrvRead bounds what OutputsFromDrv reads: the outputs list comes
// first in a derivation and is far shorter.
const maxDrvRead = 16 << 20

// OutputsFromDrv returns the output paths a derivation file lists, in its
// order. Nix 2.8 runs post-build hooks with an empty OUT_PATHS, so the hook
// reads them from DRV_PATH instead. Only the outputs list at the start of the
// ATerm is read. Outputs without a path (content-addressed derivations whose
// paths are not known in advance) are skipped.
//
// The file must be a regular file named *.drv directly in storeDir; it is
// opened without following a symbolic link and without blocking (a FIFO
// cannot hold the hook), and the read gives up when ctx is done, so the
// whole call stays within the caller's budget.
func OutputsFromDrv(ctx context.Context, path, storeDir string) ([]string, error) {
	if filepath.Dir(path) != storeDir || !strings.HasSuffix(path, ".drv") {
		return nil, fmt.Errorf("hook: derivation %s: not a .drv file directly in %s", path, storeDir)
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if err == syscall.ELOOP {
			return nil, fmt.Errorf("hook: derivation %s: a symbolic link", path)
		}
		return nil, fmt.Errorf("hook: derivation: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("hook: derivation: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("hook: derivation %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	type result struct {
		outs []string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer f.Close()
		outs, err := parseDrvOutputs(bufio.NewReaderSize(io.LimitReader(f, maxDrvRead), 8<<10))
		done <- result{outs, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("hook: derivation %s: %w", path, r.err)
		}
		return r.outs, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("hook: derivation %s: reading it took too long: %w", path, ctx.Err())
	}
}

var errDrvSyntax = errors.New("not a derivation in ATerm form")

func parseDrvOutputs(r *bufio.Reader) ([]string, error) {
	if err := expect(r, "Derive(["); err != nil {
		return nil, err
	}
	var outs []string
	for {
		c, err := r.ReadByte()
		if err != nil {
			return nil, errDrvSyntax
		}
		switch c {
		case ']':
			return outs, nil
		case ',':
			continue
		case '(':
		default:
			return nil, errDrvSyntax
		}
		var fields [4]string
		for i := range fields {
			if i > 0 {
				if err := expect(r, ","); err != nil {
					return nil, err
				}
			}
			if fields[i], err = readString(r); err != nil {
				return nil, err
			}
		}
		if err := expect(r, ")"); err != nil {
			return nil, err
		}
		if fields[1] != "" {
			outs = append(outs, fields[1])
		}
	}
}

func expect(r *bufio.Reader, s string) error {
	for i := 0; i < len(s); i++ {
		c, err := r.ReadByte()
		if err != nil || c != s[i] {
			return errDrvSyntax
		}
	}
	return nil
}

// readString reads one quoted ATerm string with Nix's escapes.
func readString(r *bufio.Reader) (string, error) {
	if err := expect(r, `"`); err != nil {
		return "", err
	}
	var sb strings.Builder
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return "", errDrvSyntax
			}
			return "", err
		}
		switch c {
		case '"':
			return sb.String(), nil
		case '\\':
			e, err := r.ReadByte()
			if err != nil {
				return "", errDrvSyntax
			}
			switch e {
			case 'n':
				e = '\n'
			case 'r':
				e = '\r'
			case 't':
				e = '\t'
			}
			sb.WriteByte(e)
		default:
			sb.WriteByte(c)
		}
		if sb.Len() > 1<<20 {
			return "", errDrvSyntax
		}
	}
}
