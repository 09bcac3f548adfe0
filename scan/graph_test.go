package scan_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/scan/scantest"
)

// dag publishes a random DAG of n paths (each referring to up to 3 earlier
// ones) and returns the paths in creation order.
func dag(t *testing.T, f *fixture, n int, seed uint64) []*scantest.Path {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	var ps []*scantest.Path
	for i := range n {
		var refs []*scantest.Path
		for range r.IntN(4) {
			if i > 0 {
				refs = append(refs, ps[r.IntN(i)])
			}
		}
		refs = slices.Compact(slices.SortedFunc(slices.Values(refs), func(a, b *scantest.Path) int {
			return cmpString(a.Base, b.Base)
		}))
		ps = append(ps, newPath(fmt.Sprintf("p%d", i), refs...))
	}
	f.publish(t, ps...)
	return ps
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestGraphQueries(t *testing.T) {
	f := newFixture(t)
	c := newPath("c")
	b := newPath("b", c)
	a := newPath("a", b)
	x := newPath("x", c)
	y := newPath("y")
	f.publish(t, c, b, a, x, y)
	g := f.scan(t, scan.Config{})
	id := func(p *scantest.Path) scan.ID { return mustLookup(t, g, p) }
	names := func(ids []scan.ID) []string {
		var out []string
		for _, i := range ids {
			out = append(out, g.Node(i).Name)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name string
		got  []scan.ID
		want []string
	}{
		{"Closure(a)", g.Closure([]scan.ID{id(a)}), []string{"a", "b", "c"}},
		{"Closure(x,y)", g.Closure([]scan.ID{id(x), id(y)}), []string{"c", "x", "y"}},
		{"Dependents(c)", g.Dependents([]scan.ID{id(c)}), []string{"a", "b", "c", "x"}},
		{"Dependents(b)", g.Dependents([]scan.ID{id(b)}), []string{"a", "b"}},
		{"Referrers(c)", g.Referrers(id(c)), []string{"b", "x"}},
		{"Referrers(a)", g.Referrers(id(a)), nil},
		{"Incomplete", g.Incomplete(), nil},
	} {
		if got := names(tc.got); !slices.Equal(got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got, ok := g.LookupPath(a.StorePath); !ok || got != id(a) {
		t.Errorf("LookupPath(%s) = %v, %v", a.StorePath, got, ok)
	}
	if _, ok := g.LookupPath("/nix/store/short"); ok {
		t.Error("LookupPath of a malformed path found something")
	}
}

func TestDeletionOrder(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			f := newFixture(t)
			ps := dag(t, f, 60, seed)
			g := f.scan(t, scan.Config{Concurrency: 8})
			// A random subset, closed under referrers, as a deletion would be.
			r := rand.New(rand.NewPCG(seed, 2))
			var seeds []scan.ID
			for _, p := range ps {
				if r.IntN(5) == 0 {
					seeds = append(seeds, mustLookup(t, g, p))
				}
			}
			set := g.Dependents(seeds)
			order := g.ReferrersFirst(append(slices.Clone(set), set...))
			if len(order) != len(set) {
				t.Fatalf("ReferrersFirst returned %d nodes for a set of %d", len(order), len(set))
			}
			pos := map[scan.ID]int{}
			for i, id := range order {
				pos[id] = i
			}
			deleted := map[scan.ID]bool{}
			for _, id := range order {
				// Nothing still present may refer to what is deleted now.
				for _, ref := range g.Referrers(id) {
					if !deleted[ref] {
						t.Fatalf("deleting %s while %s, which refers to it, is still there", g.Node(id).Name, g.Node(ref).Name)
					}
				}
				deleted[id] = true
			}
			up := g.ReferencesFirst(set)
			for i, id := range up {
				for _, ref := range g.Node(id).Refs {
					if j, ok := pos[ref]; ok && slices.Index(up, ref) > i {
						t.Fatalf("ReferencesFirst puts %s before its reference %s (%d)", g.Node(id).Name, g.Node(ref).Name, j)
					}
				}
			}
			// Closure and Dependents are each other's mirror.
			for _, p := range ps[:10] {
				id := mustLookup(t, g, p)
				for _, m := range g.Closure([]scan.ID{id}) {
					if !slices.Contains(g.Dependents([]scan.ID{m}), id) {
						t.Fatalf("%s is in the closure of %s, but not the other way round", g.Node(m).Name, p.Base)
					}
				}
			}
		})
	}
}

func TestIncompleteIsTransitive(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	gone := newPath("gone")
	mid := newPath("mid", gone)
	top := newPath("top", mid)
	side := newPath("side")
	f.publish(t, gone, mid, top, side)
	if err := f.cache.Delete(ctx, gone.HashPart+".narinfo"); err != nil {
		t.Fatal(err)
	}
	g := f.scan(t, scan.Config{})
	var got []string
	for _, id := range g.Incomplete() {
		got = append(got, g.Node(id).Name)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"mid", "top"}) {
		t.Errorf("Incomplete = %v, want [mid top]", got)
	}
	// The NAR of the deleted narinfo is now an orphan.
	if o := g.Orphans(); len(o) != 1 {
		t.Errorf("Orphans = %v, want gone's NAR", o)
	}
}
