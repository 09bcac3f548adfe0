package gc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
)

// Keys under which nixs3q keeps its own records in a cache. Nix clients
// never read them: they ask only for nix-cache-info, "<hash>.narinfo",
// "<hash>.ls", "nar/..." and "log/...".
const (
	// Prefix starts every key nixs3q owns besides the binary cache itself.
	Prefix = "nixs3q/"
	// RootsPrefix holds re-assertion records,
	// "nixs3q/roots/<YYYY-MM-DD>/<hashpart>", whose body is the store path.
	RootsPrefix = Prefix + "roots/"
	// PinsPrefix holds pins, "nixs3q/pins/<name>", whose body lists store
	// paths, one a line.
	PinsPrefix = Prefix + "pins/"
	// LockKey is the object of the running gc (see Lock).
	LockKey = Prefix + "gc/lock"
	// ReportKey is the report of the last finished gc (see Report).
	ReportKey = Prefix + "gc/last.json"
)

// nix32 is Nix's base-32 alphabet, the characters of a hash part.
const nix32 = "0123456789abcdfghijklmnpqrsvwxyz"

// dayLayout is the UTC day in root record keys.
const dayLayout = "2006-01-02"

// RootKey is the key recording that sp was still wanted on the UTC day of t.
func RootKey(sp nix.StorePath, t time.Time) string {
	return RootsPrefix + t.UTC().Format(dayLayout) + "/" + sp.HashPart
}

// Root is one re-assertion record.
type Root struct {
	Key      string
	Size     int64
	HashPart string
	// Day is the UTC day of the record; the root counts as asserted until
	// the end of that day (Until).
	Day time.Time
}

// Until is the end of the record's day: a record written at any moment of
// its day keeps its closure at least as long as one written at its end
// would, so a root re-asserted on day D counts as wanted until D+1 00:00 UTC.
func (r Root) Until() time.Time { return r.Day.Add(24 * time.Hour) }

// parseRootKey reads a key under RootsPrefix; ok is false for anything else,
// which gc leaves alone.
func parseRootKey(key string) (Root, bool) {
	rest, ok := strings.CutPrefix(key, RootsPrefix)
	if !ok {
		return Root{}, false
	}
	day, hash, ok := strings.Cut(rest, "/")
	if !ok || !validHashPart(hash) {
		return Root{}, false
	}
	d, err := time.Parse(dayLayout, day)
	if err != nil {
		return Root{}, false
	}
	return Root{Key: key, HashPart: hash, Day: d}, true
}

// ListRoots calls fn for every re-assertion record in cache, one listing
// page at a time. Keys under RootsPrefix that are not records are skipped.
func ListRoots(ctx context.Context, cache uploader.Cache, fn func(Root) error) error {
	err := cache.List(ctx, RootsPrefix, func(o uploader.Object) error {
		if r, ok := parseRootKey(o.Key); ok {
			r.Size = o.Size
			return fn(r)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: list roots: %w", err)
	}
	return nil
}

func validHashPart(h string) bool {
	if len(h) != 32 {
		return false
	}
	for i := range len(h) {
		if strings.IndexByte(nix32, h[i]) < 0 {
			return false
		}
	}
	return true
}

// pinName is what a pin may be called: it becomes a key segment.
var pinName = regexp.MustCompile(`^[A-Za-z0-9+_][A-Za-z0-9+_.=-]{0,199}$`)

// CheckPinName reports whether name can name a pin.
func CheckPinName(name string) error {
	if !pinName.MatchString(name) {
		return fmt.Errorf("gc: invalid pin name %q: use letters, digits and + _ . = - (at most 200, not starting with . or -)", name)
	}
	return nil
}

// Pin is a named set of store paths whose closures gc keeps.
type Pin struct {
	Name    string    `json:"name"`
	Paths   []string  `json:"paths"` // full store paths, sorted
	Created time.Time `json:"created"`
}

// maxPinSize bounds a pin object read back from the cache.
const maxPinSize = 1 << 20

// PutPin stores pin p, replacing a pin of the same name. Every path must be
// a store path of storeDir.
func PutPin(ctx context.Context, cache uploader.Cache, storeDir string, p Pin) error {
	if err := CheckPinName(p.Name); err != nil {
		return err
	}
	if len(p.Paths) == 0 {
		return fmt.Errorf("gc: pin %s: no paths", p.Name)
	}
	var b bytes.Buffer
	for _, path := range slices.Compact(slices.Sorted(slices.Values(p.Paths))) {
		if _, err := nix.ParseStorePath(storeDir, path); err != nil {
			return fmt.Errorf("gc: pin %s: %w", p.Name, err)
		}
		b.WriteString(path)
		b.WriteByte('\n')
	}
	key := PinsPrefix + p.Name
	if err := cache.Put(ctx, key, &b, uploader.PutOptions{ContentType: "text/plain; charset=utf-8", Size: int64(b.Len())}); err != nil {
		return fmt.Errorf("gc: pin %s: %w", p.Name, err)
	}
	return nil
}

// DeletePin removes the pin called name; a missing pin is an error wrapping
// fs.ErrNotExist, so that a typo is not silently accepted.
func DeletePin(ctx context.Context, cache uploader.Cache, name string) error {
	if err := CheckPinName(name); err != nil {
		return err
	}
	ok, err := cache.Has(ctx, PinsPrefix+name)
	if err != nil {
		return fmt.Errorf("gc: unpin %s: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("gc: no pin named %s: %w", name, fs.ErrNotExist)
	}
	if err := cache.Delete(ctx, PinsPrefix+name); err != nil {
		return fmt.Errorf("gc: unpin %s: %w", name, err)
	}
	return nil
}

// ListPins returns every pin, sorted by name, with its paths. A pin object
// that does not parse is an error: gc must not collect what a pin it cannot
// read may hold.
func ListPins(ctx context.Context, cache uploader.Cache, storeDir string) ([]Pin, error) {
	var pins []Pin
	err := cache.List(ctx, PinsPrefix, func(o uploader.Object) error {
		name := strings.TrimPrefix(o.Key, PinsPrefix)
		if CheckPinName(name) != nil {
			return fmt.Errorf("gc: %s is not a pin nixs3q wrote; remove it or rename it", o.Key)
		}
		pins = append(pins, Pin{Name: name, Created: o.LastModified})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gc: list pins: %w", err)
	}
	out := pins[:0]
	for _, p := range pins {
		paths, err := readPin(ctx, cache, storeDir, p.Name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // unpinned since the listing
		}
		if err != nil {
			return nil, err
		}
		p.Paths = paths
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Pin) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func readPin(ctx context.Context, cache uploader.Cache, storeDir, name string) ([]string, error) {
	rc, err := cache.Get(ctx, PinsPrefix+name)
	if err != nil {
		return nil, fmt.Errorf("gc: read pin %s: %w", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxPinSize+1))
	if err != nil {
		return nil, fmt.Errorf("gc: read pin %s: %w", name, err)
	}
	if len(data) > maxPinSize {
		return nil, fmt.Errorf("gc: pin %s is larger than %d bytes", name, maxPinSize)
	}
	var paths []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxPinSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if _, err := nix.ParseStorePath(storeDir, line); err != nil {
			return nil, fmt.Errorf("gc: pin %s: %w", name, err)
		}
		paths = append(paths, line)
	}
	return paths, nil
}
