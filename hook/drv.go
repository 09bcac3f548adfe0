package hook

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// OutputsFromDrv returns the output paths a derivation file lists, in its
// order. Nix 2.8 runs post-build hooks with an empty OUT_PATHS, so the hook
// reads them from DRV_PATH instead. Only the outputs list at the start of the
// ATerm is read. Outputs without a path (content-addressed derivations whose
// paths are not known in advance) are skipped.
func OutputsFromDrv(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hook: derivation: %w", err)
	}
	defer f.Close()
	outs, err := parseDrvOutputs(bufio.NewReaderSize(f, 8<<10))
	if err != nil {
		return nil, fmt.Errorf("hook: derivation %s: %w", path, err)
	}
	return outs, nil
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
