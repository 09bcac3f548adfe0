package gc

import (
	"context"
	"fmt"

	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/uploader"
)

// referrersFirst splits set into layers such that every node's referrers in
// set are in earlier layers: deleting layer after layer never leaves a
// node of set referenced by a remaining one. Nodes on a reference cycle
// (which store paths cannot form, but a corrupt cache might) come last.
func referrersFirst(g *scan.Graph, set map[scan.ID]bool) [][]scan.ID {
	waiting := make(map[scan.ID]int, len(set)) // referrers in set not yet placed
	for id := range set {
		for _, ref := range g.Node(id).Refs {
			if set[ref] && ref != id {
				waiting[ref]++
			}
		}
	}
	var layer []scan.ID
	for id := range g.Len() {
		if set[scan.ID(id)] && waiting[scan.ID(id)] == 0 {
			layer = append(layer, scan.ID(id))
		}
	}
	var out [][]scan.ID
	placed := 0
	for len(layer) > 0 {
		out = append(out, layer)
		placed += len(layer)
		var next []scan.ID
		for _, id := range layer {
			for _, ref := range g.Node(id).Refs {
				if set[ref] && ref != id {
					if waiting[ref]--; waiting[ref] == 0 {
						next = append(next, ref)
					}
				}
			}
		}
		layer = next
	}
	if placed < len(set) {
		var rest []scan.ID
		for id := range g.Len() {
			if set[scan.ID(id)] && waiting[scan.ID(id)] > 0 {
				rest = append(rest, scan.ID(id))
			}
		}
		out = append(out, rest)
	}
	return out
}

// listing is what one listing of the bucket found, by class.
type listing struct {
	narinfos map[string]uploader.Object // by hash part
	nars     map[string]uploader.Object // by key
	listings map[string]uploader.Object // by hash part
	tally    Tally                      // kept objects, by kind
}

func (r *run) list(ctx context.Context) (*listing, error) {
	l := &listing{
		narinfos: make(map[string]uploader.Object),
		nars:     make(map[string]uploader.Object),
		listings: make(map[string]uploader.Object),
	}
	err := r.cache.List(ctx, "", func(o uploader.Object) error {
		switch scan.Classify(o.Key) {
		case scan.ClassNarInfo:
			l.narinfos[scan.HashPart(o.Key)] = o
			l.tally.NarInfos.add(o.Size)
		case scan.ClassNar:
			l.nars[o.Key] = o
			l.tally.Nars.add(o.Size)
		case scan.ClassListing:
			l.listings[scan.HashPart(o.Key)] = o
			l.tally.Listings.add(o.Size)
		case scan.ClassMeta:
			if _, ok := parseRootKey(o.Key); ok {
				l.tally.Roots.add(o.Size)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gc: list: %w", err)
	}
	return l, nil
}
