package nix

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// DerivationOutput is one output of a derivation as its .drv file lists it.
type DerivationOutput struct {
	Name string
	// Path is the output path, or "" for a floating content-addressed
	// output (ca-derivations), whose path is known only after the build.
	Path string
	// HashAlgo is "" for input-addressed outputs, e.g. "r:sha256" for
	// content-addressed ones.
	HashAlgo string
}

// ErrNotDerivation is wrapped by ReadDerivationOutputs for a file that is
// not a derivation in ATerm form.
var ErrNotDerivation = errors.New("nix: not a derivation in ATerm form")

// ReadDerivationOutputs returns the outputs listed at the start of the
// derivation file at path (Derive([("out","/nix/store/...","",""),...],...)),
// reading nothing beyond that list.
func ReadDerivationOutputs(path string) ([]DerivationOutput, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nix: derivation: %w", err)
	}
	defer f.Close()
	outs, err := parseDerivationOutputs(bufio.NewReaderSize(f, 8<<10))
	if err != nil {
		return nil, fmt.Errorf("nix: derivation %s: %w", path, err)
	}
	return outs, nil
}

func parseDerivationOutputs(r *bufio.Reader) ([]DerivationOutput, error) {
	if err := expectText(r, "Derive(["); err != nil {
		return nil, err
	}
	var outs []DerivationOutput
	for {
		c, err := r.ReadByte()
		if err != nil {
			return nil, ErrNotDerivation
		}
		switch c {
		case ']':
			return outs, nil
		case ',':
			continue
		case '(':
		default:
			return nil, ErrNotDerivation
		}
		var fields [4]string
		for i := range fields {
			if i > 0 {
				if err := expectText(r, ","); err != nil {
					return nil, err
				}
			}
			if fields[i], err = readATermString(r); err != nil {
				return nil, err
			}
		}
		if err := expectText(r, ")"); err != nil {
			return nil, err
		}
		outs = append(outs, DerivationOutput{Name: fields[0], Path: fields[1], HashAlgo: fields[2]})
	}
}

func expectText(r *bufio.Reader, s string) error {
	for i := 0; i < len(s); i++ {
		if c, err := r.ReadByte(); err != nil || c != s[i] {
			return ErrNotDerivation
		}
	}
	return nil
}

// readATermString reads one quoted ATerm string with Nix's escapes.
func readATermString(r *bufio.Reader) (string, error) {
	if err := expectText(r, `"`); err != nil {
		return "", err
	}
	var sb strings.Builder
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return "", ErrNotDerivation
			}
			return "", err
		}
		switch c {
		case '"':
			return sb.String(), nil
		case '\\':
			e, err := r.ReadByte()
			if err != nil {
				return "", ErrNotDerivation
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
			return "", ErrNotDerivation
		}
	}
}
