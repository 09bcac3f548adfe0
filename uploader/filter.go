package uploader

import (
	"fmt"
	"regexp"
)

// Filters leave store paths out of the cache. The semantics keep the
// closure invariant (a narinfo only when every reference's narinfo is
// there):
//
//   - A closure member whose name matches Exclude, or whose NAR is larger
//     than MaxNarSize, and that the cache does not already have, is
//     excluded: it is not uploaded.
//   - A member that is missing from the cache and refers to an excluded
//     member, directly or not, is held back: it is not uploaded either,
//     because its narinfo would promise a reference clients cannot fetch.
//     It is reported with the excluded path that holds it back.
//   - Members the cache already has, or that are signed by an upstream key
//     (SkipSignedBy), are never excluded: they are not uploaded anyway, and
//     what refers to them stays publishable.
//
// The opposite choice, publishing the paths that refer to an excluded one,
// would give clients narinfos whose closure they cannot substitute: Nix
// fails the substitution of the missing reference, and without --fallback
// the client's build with it, which is worse than not finding the path.
type Filters struct {
	// Exclude is a regular expression (Go syntax, RE2) matched against the
	// name of each store path, the part after "<hash>-" (e.g.
	// "hello-2.12.1", "source", "foo.drv"). It is not anchored: use ^ and $
	// to match whole names. Empty excludes nothing.
	Exclude string
	// MaxNarSize excludes paths whose NAR (uncompressed) is larger than
	// this many bytes. 0 excludes nothing.
	MaxNarSize int64
}

// Validate checks the regular expression and the size.
func (f Filters) Validate() error {
	if _, err := f.compile(); err != nil {
		return err
	}
	if f.MaxNarSize < 0 {
		return fmt.Errorf("uploader: maximum NAR size %d is negative", f.MaxNarSize)
	}
	return nil
}

func (f Filters) compile() (*regexp.Regexp, error) {
	if f.Exclude == "" {
		return nil, nil
	}
	re, err := regexp.Compile(f.Exclude)
	if err != nil {
		return nil, fmt.Errorf("uploader: exclude pattern: %w", err)
	}
	return re, nil
}

// filter is the compiled form of Filters.
type filter struct {
	exclude    *regexp.Regexp
	maxNarSize uint64
}

func newFilter(f Filters) (*filter, error) {
	re, err := f.compile()
	if err != nil {
		return nil, err
	}
	return &filter{exclude: re, maxNarSize: uint64(f.MaxNarSize)}, nil
}

// reason says why the path is excluded, or "" when it is not.
func (f *filter) reason(name string, narSize uint64) string {
	switch {
	case f.exclude != nil && f.exclude.MatchString(name):
		return fmt.Sprintf("name matches --exclude %q", f.exclude.String())
	case f.maxNarSize > 0 && narSize > f.maxNarSize:
		return fmt.Sprintf("NAR size %d is over --max-nar-size %d", narSize, f.maxNarSize)
	}
	return ""
}

// applyFilters marks the missing members the filters exclude, then the
// missing members whose closure holds an excluded one, recording for each
// held-back member one excluded path that holds it back (the first in
// sorted order among its nearest). It runs after lookup, so that members
// the cache has are never excluded.
func (p *plan) applyFilters(f *filter) {
	if f == nil || (f.exclude == nil && f.maxNarSize == 0) {
		return
	}
	for _, path := range p.paths {
		if p.state[path] != stateMissing {
			continue
		}
		if why := f.reason(p.sps[path].Name, p.infos[path].NarSize); why != "" {
			p.state[path] = stateExcluded
			p.why[path] = why
		}
	}
	memo := make(map[string]string)
	var blocker func(path string) string
	blocker = func(path string) string {
		if b, ok := memo[path]; ok {
			return b
		}
		var found string
		for _, r := range p.infos[path].References {
			if r == path {
				continue
			}
			var b string
			switch p.state[r] {
			case stateExcluded:
				b = r
			case stateMissing:
				b = blocker(r)
			}
			if b != "" && (found == "" || b < found) {
				found = b
			}
		}
		memo[path] = found
		return found
	}
	for _, path := range p.paths {
		if p.state[path] != stateMissing {
			continue
		}
		if b := blocker(path); b != "" {
			p.heldBy[path] = b
		}
	}
	for path := range p.heldBy {
		p.state[path] = stateHeldBack
	}
}

// filtered returns the excluded and the held-back members, sorted.
func (p *plan) filtered() (excluded, heldBack []string) {
	for _, path := range p.paths {
		switch p.state[path] {
		case stateExcluded:
			excluded = append(excluded, path)
		case stateHeldBack:
			heldBack = append(heldBack, path)
		}
	}
	return excluded, heldBack
}

// filterOwners assigns each excluded or held-back member to the first root
// (in roots' order) whose closure holds it, so that counts summed over
// roots count each member once per call.
func (p *plan) filterOwners(roots []string) map[string]string {
	owner := make(map[string]string)
	for _, root := range roots {
		for _, path := range p.closure(root) {
			switch p.state[path] {
			case stateExcluded, stateHeldBack:
				if _, ok := owner[path]; !ok {
					owner[path] = root
				}
			}
		}
	}
	return owner
}

// heldBackBy says what keeps root out of the cache: root itself when it is
// excluded, the excluded path that holds it back, or "".
func (p *plan) heldBackBy(root string) string {
	switch p.state[root] {
	case stateExcluded:
		return root
	case stateHeldBack:
		return p.heldBy[root]
	}
	return ""
}
