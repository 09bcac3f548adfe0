package scan

import (
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
)

// ID names a store path in a Graph: an index from 0 to Graph.Len()-1.
type ID int32

// State says what a Graph knows of a store path's narinfo.
type State uint8

const (
	// Missing: the path is referenced by a narinfo, but no narinfo of its
	// own was listed (or it vanished before it could be read).
	Missing State = iota
	// Valid: the narinfo was read and parsed; its fields are filled in.
	Valid
	// Invalid: a narinfo was listed but cannot be used (Node.Err says
	// why): it does not parse, is too large, names a path in another store
	// directory or with another hash part than its key.
	Invalid
)

// String names the state in reports.
func (s State) String() string {
	switch s {
	case Missing:
		return "missing"
	case Valid:
		return "valid"
	case Invalid:
		return "invalid"
	}
	return "unknown"
}

// SigStatus is the result of checking a narinfo's signatures against
// Config.TrustedKeys.
type SigStatus uint8

const (
	// SigUnchecked: no trusted keys were given, or the narinfo is not
	// Valid.
	SigUnchecked SigStatus = iota
	// SigTrusted: at least one signature verifies under a trusted key.
	SigTrusted
	// SigNone: the narinfo has no signature at all.
	SigNone
	// SigUntrusted: it has signatures, but none verifies under a trusted
	// key (another key, or a signature that does not match the contents).
	SigUntrusted
)

// String names the status in reports.
func (s SigStatus) String() string {
	switch s {
	case SigUnchecked:
		return "unchecked"
	case SigTrusted:
		return "trusted"
	case SigNone:
		return "unsigned"
	case SigUntrusted:
		return "untrusted"
	}
	return "unknown"
}

// Node is what a Graph knows of one store path. Fields below State are set
// as its State allows: object fields for Valid and Invalid, narinfo fields
// for Valid only.
type Node struct {
	HashPart string // 32 nix32 characters; the node's identity
	Name     string // the name after "<hash>-"; "" when unknown (an Invalid narinfo)
	State    State
	Err      string // why the narinfo is Invalid

	// The narinfo object, as listed.
	Size     int64
	Modified time.Time

	// The narinfo's fields.
	URL         string // of the NAR, relative to the cache root
	Compression string // "none", "xz", "zstd", "bzip2", "br", ...; a missing field reads as "bzip2"
	FileHash    nix.Hash
	FileSize    uint64
	NarHash     nix.Hash
	NarSize     uint64
	Refs        []ID      // references other than the path itself, sorted; read-only
	SelfRef     bool      // the path references itself
	Sig         SigStatus // signatures against Config.TrustedKeys
	Signers     string    // names of the keys of its Sig lines, comma-separated
	CA          bool      // content-addressed (has a CA field)

	// Listing: a "<hashpart>.ls" object exists beside the narinfo.
	Listing bool
}

// Key is the cache key of the node's narinfo.
func (n *Node) Key() string { return NarInfoKey(n.HashPart) }

// Base is the store path basename "<hash>-<name>", or the hash part alone
// when the name is unknown.
func (n *Node) Base() string {
	if n.Name == "" {
		return n.HashPart
	}
	return n.HashPart + "-" + n.Name
}

// NarStatus is how a Valid narinfo's NAR object looks in the listing.
type NarStatus uint8

const (
	NarOK            NarStatus = iota // listed, with the narinfo's FileSize (or FileSize unknown)
	NarMissing                        // not listed
	NarSizeMismatch                   // listed with another size than FileSize
	NarExternal                       // URL is not a key of this cache (absolute URL); not checked
	NarNotApplicable                  // the node is not Valid
)

// String names the status in reports.
func (s NarStatus) String() string {
	return [...]string{"ok", "missing", "size-mismatch", "external", "n/a"}[s]
}

// CacheInfo is what the cache's nix-cache-info says.
type CacheInfo struct {
	Present       bool
	StoreDir      string // "" when the file has no StoreDir line
	WantMassQuery string
	Priority      string
}

// Stats counts what a scan saw.
type Stats struct {
	Objects int64 // objects listed, of every class
	Bytes   int64 // their total size
	// ByClass counts objects and bytes per Class.
	ByClass [numClasses]Count
	// Vanished counts narinfos that were listed but gone when read.
	Vanished int64
	// Valid, Invalid and Missing count nodes by State.
	Valid, Invalid, Missing int
	// Pending counts unfinished uploads.
	Pending int
}

// Count is a number of objects and their total size.
type Count struct {
	Objects int64
	Bytes   int64
}

// objMeta is a listed object without its key, kept small.
type objMeta struct {
	size     int64
	modified int64 // unix nanoseconds
}

// Graph is the result of a Scan. It is immutable and safe for concurrent
// use.
type Graph struct {
	storeDir  string
	started   time.Time
	finished  time.Time
	nodes     []Node
	byHash    map[string]ID
	nars      map[string]objMeta // ClassNar objects by key
	others    []Object           // objects of the other classes, but narinfos
	otherIdx  map[string]int32   // others by key
	pending   []uploader.PendingUpload
	cacheInfo CacheInfo
	stats     Stats

	// Reverse edges in compressed form: the referrers of node i are
	// rev[revOff[i]:revOff[i+1]].
	revOff []int32
	rev    []ID
}

// Object is a listed cache object with its class.
type Object struct {
	uploader.Object
	Class Class
}

// StoreDir is the store directory the graph was built for.
func (g *Graph) StoreDir() string { return g.storeDir }

// Started is when the scan began listing: objects modified before it that
// the listing did not show did not exist when it passed them.
func (g *Graph) Started() time.Time { return g.started }

// Finished is when the scan ended.
func (g *Graph) Finished() time.Time { return g.finished }

// Len is the number of nodes; IDs run from 0 to Len()-1.
func (g *Graph) Len() int { return len(g.nodes) }

// Node returns the node id. The pointer is read-only.
func (g *Graph) Node(id ID) *Node { return &g.nodes[id] }

// Lookup finds the node of a hash part.
func (g *Graph) Lookup(hashPart string) (ID, bool) {
	id, ok := g.byHash[hashPart]
	return id, ok
}

// LookupPath finds the node of a full store path or basename (only its
// hash part is compared).
func (g *Graph) LookupPath(p string) (ID, bool) {
	base := path.Base(p)
	if len(base) < 32 {
		return 0, false
	}
	return g.Lookup(base[:32])
}

// StorePath is the full store path of node id, or "" when its name is
// unknown.
func (g *Graph) StorePath(id ID) string {
	n := &g.nodes[id]
	if n.Name == "" {
		return ""
	}
	return path.Join(g.storeDir, n.Base())
}

// CacheInfo returns what nix-cache-info said.
func (g *Graph) CacheInfo() CacheInfo { return g.cacheInfo }

// Stats returns the counts of the scan.
func (g *Graph) Stats() Stats { return g.stats }

// Pending returns the unfinished uploads, in the backend's order. Empty
// when the backend keeps none (it is not an uploader.PendingLister).
func (g *Graph) Pending() []uploader.PendingUpload { return slices.Clone(g.pending) }

// Others returns the objects of the given classes (all but narinfos and
// NARs when none is given), in listing order.
func (g *Graph) Others(classes ...Class) []Object {
	var out []Object
	for _, o := range g.others {
		if len(classes) == 0 || slices.Contains(classes, o.Class) {
			out = append(out, o)
		}
	}
	return out
}

// Nar returns the listed NAR object at key.
func (g *Graph) Nar(key string) (uploader.Object, bool) {
	m, ok := g.nars[key]
	if !ok {
		return uploader.Object{}, false
	}
	return uploader.Object{Key: key, Size: m.size, LastModified: time.Unix(0, m.modified)}, true
}

// Nars returns every listed NAR object, sorted by key.
func (g *Graph) Nars() []uploader.Object {
	out := make([]uploader.Object, 0, len(g.nars))
	for k, m := range g.nars {
		out = append(out, uploader.Object{Key: k, Size: m.size, LastModified: time.Unix(0, m.modified)})
	}
	slices.SortFunc(out, func(a, b uploader.Object) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// NarStatus checks a Valid node's NAR against the listing.
func (g *Graph) NarStatus(id ID) NarStatus {
	n := &g.nodes[id]
	if n.State != Valid {
		return NarNotApplicable
	}
	if uploader.CheckKey(n.URL) != nil || strings.Contains(n.URL, "://") {
		return NarExternal
	}
	m, ok := g.nars[n.URL]
	if !ok {
		if o, found := g.other(n.URL); found {
			m, ok = objMeta{size: o.Size}, true
		}
	}
	switch {
	case !ok:
		return NarMissing
	case n.FileSize != 0 && uint64(m.size) != n.FileSize:
		return NarSizeMismatch
	}
	return NarOK
}

func (g *Graph) other(key string) (Object, bool) {
	if i, ok := g.otherIdx[key]; ok {
		return g.others[i], true
	}
	return Object{}, false
}

// Orphans returns the NAR objects that no Valid narinfo names as its URL,
// sorted by key. Some may be uploads in progress, whose narinfo is not
// written yet: callers judge them by age.
func (g *Graph) Orphans() []uploader.Object {
	used := make(map[string]bool, len(g.nodes))
	for i := range g.nodes {
		if g.nodes[i].State == Valid {
			used[g.nodes[i].URL] = true
		}
	}
	var out []uploader.Object
	for _, o := range g.Nars() {
		if !used[o.Key] {
			out = append(out, o)
		}
	}
	return out
}

// NarUsers returns the Valid nodes whose URL is key, in ID order.
func (g *Graph) NarUsers(key string) []ID {
	var out []ID
	for i := range g.nodes {
		if g.nodes[i].State == Valid && g.nodes[i].URL == key {
			out = append(out, ID(i))
		}
	}
	return out
}

// Referrers returns the nodes whose Refs contain id, sorted; read-only.
func (g *Graph) Referrers(id ID) []ID { return g.rev[g.revOff[id]:g.revOff[id+1]] }

// Closure returns ids and every node they reference, directly or not,
// sorted. References of nodes that are not Valid are unknown and not
// followed.
func (g *Graph) Closure(ids []ID) []ID {
	return g.walk(ids, func(id ID) []ID { return g.nodes[id].Refs })
}

// Dependents returns ids and every node that references one of them,
// directly or not, sorted: the nodes whose closure contains one of ids.
func (g *Graph) Dependents(ids []ID) []ID {
	return g.walk(ids, g.Referrers)
}

func (g *Graph) walk(ids []ID, next func(ID) []ID) []ID {
	seen := make([]bool, len(g.nodes))
	stack := make([]ID, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			stack = append(stack, id)
		}
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, r := range next(id) {
			if !seen[r] {
				seen[r] = true
				stack = append(stack, r)
			}
		}
	}
	var out []ID
	for i, s := range seen {
		if s {
			out = append(out, ID(i))
		}
	}
	return out
}

// Incomplete returns the Valid nodes whose closure is incomplete: it
// contains a node that is Missing or Invalid. Sorted.
func (g *Graph) Incomplete() []ID {
	var broken []ID
	for i := range g.nodes {
		if g.nodes[i].State != Valid {
			broken = append(broken, ID(i))
		}
	}
	var out []ID
	for _, id := range g.Dependents(broken) {
		if g.nodes[id].State == Valid {
			out = append(out, id)
		}
	}
	return out
}

// ReferrersFirst orders ids so that every node comes before the nodes of
// ids it references: the order in which to delete narinfos so that none
// left behind ever points at a deleted one. Self-references are ignored;
// the nodes of a reference cycle (which Nix never creates) come in an
// arbitrary but fixed order. Duplicates are dropped.
func (g *Graph) ReferrersFirst(ids []ID) []ID {
	out := g.ReferencesFirst(ids)
	slices.Reverse(out)
	return out
}

// ReferencesFirst orders ids so that every node comes after the nodes of
// ids it references: the order in which to publish them.
func (g *Graph) ReferencesFirst(ids []ID) []ID {
	in := make(map[ID]uint8, len(ids)) // 1: in the set, 2: visiting, 3: done
	sorted := slices.Sorted(slices.Values(ids))
	for _, id := range sorted {
		in[id] = 1
	}
	out := make([]ID, 0, len(in))
	type frame struct {
		id ID
		i  int
	}
	for _, root := range sorted {
		if in[root] != 1 {
			continue
		}
		in[root] = 2
		stack := []frame{{root, 0}}
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			refs := g.nodes[f.id].Refs
			if f.i < len(refs) {
				r := refs[f.i]
				f.i++
				if in[r] == 1 {
					in[r] = 2
					stack = append(stack, frame{r, 0})
				}
				continue
			}
			in[f.id] = 3
			out = append(out, f.id)
			stack = stack[:len(stack)-1]
		}
	}
	return out
}
