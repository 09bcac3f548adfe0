package uploader

import (
	"errors"
	"strconv"
	"strings"
)

// ParseSize reads a byte count as Nix's settings and nixs3q's flags write
// it: a decimal integer with an optional K, M, G or T suffix (powers of
// 1024, either case). Negative numbers and overflows are errors.
func ParseSize(v string) (int64, error) {
	mult, num := int64(1), v
	if n := len(v); n > 0 {
		switch strings.ToUpper(v[n-1:]) {
		case "K":
			mult, num = 1<<10, v[:n-1]
		case "M":
			mult, num = 1<<20, v[:n-1]
		case "G":
			mult, num = 1<<30, v[:n-1]
		case "T":
			mult, num = 1<<40, v[:n-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/mult {
		return 0, errors.New("want a size in bytes, e.g. 16777216 or 16M")
	}
	return n * mult, nil
}
