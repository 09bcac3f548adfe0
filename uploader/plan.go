package uploader

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

// presenceState is what one Upload call knows about a closure member.
type presenceState int

const (
	// stateMissing: the narinfo is not in the cache; the path is uploaded.
	stateMissing presenceState = iota
	// statePresent: a lookup during this call found the narinfo.
	statePresent
	// stateCached: only the presence cache says the narinfo exists. Such a
	// path is confirmed by a lookup before anything referring to it is
	// published, so a stale entry never hides a missing reference.
	stateCached
	// stateUpstream: signed by an upstream cache's key (Config.SkipSignedBy);
	// clients fetch it from there, so it is neither looked up nor uploaded.
	stateUpstream
	// stateExcluded: missing, and left out by the filters (Config.Filters).
	stateExcluded
	// stateHeldBack: missing, and refers to an excluded path, directly or
	// not; publishing it would break the closure invariant.
	stateHeldBack
)

// plan is one Upload call's view of a closure. It is built before any
// upload starts and read-only afterwards (but for flights), so flights share
// it freely.
type plan struct {
	started time.Time // before any lookup of this plan
	roots   []string
	paths   []string // sorted
	infos   map[string]*PathInfo
	sps     map[string]nix.StorePath
	state   map[string]presenceState
	// force lists paths uploaded whatever the cache holds (Republish).
	force  []string
	why    map[string]string // excluded path -> which filter excluded it
	heldBy map[string]string // held-back path -> an excluded path it refers to

	// flights are the flights this plan's call and its flights joined, by
	// path; guarded by Uploader.mu.
	flights map[string]*flight
	// observed lists the roots the Observer was given a plan of; written
	// before the plan is registered in Uploader.plans, then guarded by
	// Uploader.mu.
	observed map[string]bool
}

// newPlan indexes the union of the closures of roots and checks that it is
// closed: every reference is a member, every root is a member, every hash is
// a sha256 NarHash, and references other than self-references form no cycle
// (a cycle would make publishing in reference order impossible).
func newPlan(storeDir string, roots []string, infos []PathInfo) (*plan, error) {
	root := strings.Join(roots, ", ")
	p := &plan{
		started: time.Now(),
		roots:   roots,
		infos:   make(map[string]*PathInfo, len(infos)),
		sps:     make(map[string]nix.StorePath, len(infos)),
		state:   make(map[string]presenceState, len(infos)),
		why:     make(map[string]string),
		heldBy:  make(map[string]string),

		flights:  make(map[string]*flight),
		observed: make(map[string]bool),
	}
	for i := range infos {
		info := &infos[i]
		sp, err := nix.ParseStorePath(storeDir, info.Path)
		if err != nil {
			return nil, fmt.Errorf("uploader: closure of %s: %w", root, err)
		}
		if info.NarHash.Algo != "sha256" || info.NarHash.Validate() != nil {
			return nil, fmt.Errorf("uploader: closure of %s: %s has no sha256 NarHash", root, info.Path)
		}
		if _, dup := p.infos[info.Path]; dup {
			return nil, fmt.Errorf("uploader: closure of %s lists %s twice", root, info.Path)
		}
		p.infos[info.Path] = info
		p.sps[info.Path] = sp
		p.paths = append(p.paths, info.Path)
	}
	slices.Sort(p.paths)
	for _, r := range roots {
		if p.infos[r] == nil {
			return nil, fmt.Errorf("uploader: closure of %s does not contain it", r)
		}
	}
	for _, path := range p.paths {
		for _, r := range p.infos[path].References {
			if p.infos[r] == nil {
				return nil, fmt.Errorf("uploader: closure of %s is incomplete: %s references %s", root, path, r)
			}
		}
	}
	if err := p.checkAcyclic(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *plan) checkAcyclic() error {
	const (
		unvisited = iota
		active
		finished
	)
	mark := make(map[string]int, len(p.paths))
	var visit func(path string) error
	visit = func(path string) error {
		switch mark[path] {
		case active:
			return fmt.Errorf("uploader: closure of %s has a reference cycle through %s", strings.Join(p.roots, ", "), path)
		case finished:
			return nil
		}
		mark[path] = active
		for _, r := range p.infos[path].References {
			if r != path {
				if err := visit(r); err != nil {
					return err
				}
			}
		}
		mark[path] = finished
		return nil
	}
	for _, path := range p.paths {
		if err := visit(path); err != nil {
			return err
		}
	}
	return nil
}

// closure returns root and every path it references, directly or not.
func (p *plan) closure(root string) []string {
	seen := map[string]bool{root: true}
	stack := []string{root}
	for len(stack) > 0 {
		path := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, r := range p.infos[path].References {
			if !seen[r] {
				seen[r] = true
				stack = append(stack, r)
			}
		}
	}
	out := make([]string, 0, len(seen))
	for path := range seen {
		out = append(out, path)
	}
	slices.Sort(out)
	return out
}

// missing returns the paths to upload, sorted.
func (p *plan) missing() []string {
	var out []string
	for _, path := range p.paths {
		if p.state[path] == stateMissing {
			out = append(out, path)
		}
	}
	return out
}

// unconfirmedRefs returns the paths that are present only by the presence
// cache's word and referenced by a missing path.
func (p *plan) unconfirmedRefs() []string {
	seen := make(map[string]bool)
	var out []string
	for _, path := range p.missing() {
		for _, r := range p.infos[path].References {
			if p.state[r] == stateCached && !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (p *plan) keys(paths []string) []string {
	keys := make([]string, len(paths))
	for i, path := range paths {
		keys[i] = narinfoKey(p.sps[path])
	}
	return keys
}

// observe returns root's closure and the NAR sizes of its missing members,
// as Observer.Planned takes them, and records that the Observer has them.
func (p *plan) observe(root string) ([]string, map[string]uint64) {
	closure := p.closure(root)
	sizes := make(map[string]uint64)
	for _, path := range closure {
		if p.state[path] == stateMissing {
			sizes[path] = p.infos[path].NarSize
		}
	}
	p.observed[root] = true
	return closure, sizes
}

// referencesFirst returns paths ordered by their depth in the closure
// (paths without references first, then those referring only to them, and
// so on), by name within a depth.
func (p *plan) referencesFirst(paths []string) []string {
	depth := make(map[string]int, len(p.paths))
	var depthOf func(path string) int
	depthOf = func(path string) int {
		if d, ok := depth[path]; ok {
			return d
		}
		d := 0
		for _, r := range p.infos[path].References {
			if r != path {
				d = max(d, depthOf(r)+1)
			}
		}
		depth[path] = d
		return d
	}
	out := slices.Clone(paths)
	for _, path := range out {
		depthOf(path)
	}
	slices.SortStableFunc(out, func(a, b string) int { return depth[a] - depth[b] })
	return out
}
