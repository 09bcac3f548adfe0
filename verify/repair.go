package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/uploader"
)

// Publisher publishes store paths of the local store into the cache.
// *uploader.Uploader implements it.
type Publisher interface {
	Republish(ctx context.Context, roots []string, done func(root string, res uploader.Result, err error))
	EnsureCacheInfo(ctx context.Context) error
}

var _ Publisher = (*uploader.Uploader)(nil)

// RepairOptions choose what Repair may do beyond mending narinfos.
type RepairOptions struct {
	// DeleteOrphans deletes NARs no narinfo uses (also those of the
	// narinfos the repair removes) and aborts unfinished uploads, when
	// they are older than Config.Grace when looked at again just before.
	DeleteOrphans bool
}

// Plan is what Repair does, decided from a Report without guessing.
type Plan struct {
	// Refused is set when the cache must not be repaired at all (it
	// belongs to another store directory); nothing else is then done.
	Refused string `json:"refused,omitempty"`
	// CreateCacheInfo writes a missing nix-cache-info.
	CreateCacheInfo bool `json:"create_cache_info,omitempty"`
	// Republish are store paths of the local store whose cache entries are
	// broken or missing; they are uploaded again, references first.
	Republish []string `json:"republish"`
	// Remove are the narinfos of paths whose NAR or narinfo is gone (or
	// that depend on one) and that the local store does not have, in the
	// order they are deleted: referrers first.
	Remove []Removal `json:"remove"`
	// Listings are the .ls listings of removed narinfos, deleted after
	// them.
	Listings []string `json:"listings,omitempty"`
	// Orphans are NARs no narinfo uses, or will use once Remove is done;
	// deleted only with DeleteOrphans.
	Orphans []string `json:"orphans,omitempty"`
	// Pending are unfinished uploads to abort, only with DeleteOrphans.
	Pending []uploader.PendingUpload `json:"pending,omitempty"`
	// DeleteOrphans says whether Orphans and Pending are acted on.
	DeleteOrphans bool `json:"delete_orphans"`
	// Unrepairable are problems the repair leaves as they are, with why.
	Unrepairable []Problem `json:"unrepairable"`

	// causes are the gone nodes the removals follow from, for the
	// re-check before deleting.
	causes []cause
}

// Removal is one narinfo to delete.
type Removal struct {
	Key       string `json:"key"`
	StorePath string `json:"store_path,omitempty"`
	Reason    string `json:"reason"`

	node scan.ID
}

type cause struct {
	node scan.ID
	kind Kind // NarMissing, NarSize, NarHash, NarInfoInvalid or ReferenceMissing (the node itself is missing)
}

// PlanRepair decides what Repair does about the problems of r, found in g:
//
//   - A broken path (its NAR missing, truncated or corrupt, its narinfo
//     invalid or unsigned, or missing while another narinfo references it)
//     that the local store has is published again.
//   - A path whose NAR or narinfo is gone and that the local store does not
//     have is removed, with every narinfo that depends on it, referrers
//     first.
//   - Signature problems of paths the local store does not have cannot be
//     mended without the NAR's contents: they are left and reported.
//   - Orphan NARs (also those of removed narinfos) and unfinished uploads
//     are listed for deletion, which happens only with DeleteOrphans.
//
// It only reads the local store; it changes nothing.
func PlanRepair(ctx context.Context, r *Report, g *scan.Graph, local LocalStore, opt RepairOptions) (*Plan, error) {
	plan := &Plan{DeleteOrphans: opt.DeleteOrphans, Republish: []string{}, Remove: []Removal{}, Unrepairable: []Problem{}}
	for _, p := range r.Problems {
		if p.Kind == CacheInfoStoreDir {
			plan.Refused = "the cache belongs to another store directory (" + p.Detail + "); repair it by hand"
			plan.Unrepairable = slices.Clone(r.Problems)
			return plan, nil
		}
	}

	// The nodes to mend, with the problems that name them.
	broken := make(map[scan.ID][]Problem)
	var order []scan.ID
	note := func(id scan.ID, p Problem) {
		if _, ok := broken[id]; !ok {
			order = append(order, id)
		}
		broken[id] = append(broken[id], p)
	}
	for _, p := range r.Problems {
		switch p.Kind {
		case CacheInfoMissing:
			plan.CreateCacheInfo = true
		case NarInfoInvalid, NarMissing, NarSize, NarHash, SignatureMissing, SignatureUntrusted:
			note(p.node, p)
		case ReferenceMissing:
			if id, ok := g.Lookup(scan.HashPart(p.Other)); ok {
				note(id, p)
			}
		case OrphanNar:
			plan.Orphans = append(plan.Orphans, p.Key)
		case PendingUpload:
			plan.Pending = append(plan.Pending, uploader.PendingUpload{Key: p.Key, ID: p.UploadID})
		}
	}

	// Which of them the local store has.
	paths := make(map[scan.ID]string)
	var query []string
	for _, id := range order {
		sp := g.StorePath(id)
		if sp == "" { // an invalid narinfo: only its hash part is known
			found, err := local.Find(ctx, g.Node(id).HashPart)
			if err != nil {
				return nil, err
			}
			sp = found
		}
		if sp != "" {
			paths[id] = sp
			query = append(query, sp)
		}
	}
	valid, err := local.Valid(ctx, query)
	if err != nil {
		return nil, err
	}

	var gone []scan.ID
	goneWhy := make(map[scan.ID]string)
	for _, id := range order {
		if sp := paths[id]; sp != "" && valid[sp] {
			plan.Republish = append(plan.Republish, sp)
			continue
		}
		var c *cause
		for _, p := range broken[id] {
			switch p.Kind {
			case NarInfoInvalid, NarMissing, NarSize, NarHash:
				c = &cause{node: id, kind: p.Kind}
				goneWhy[id] = string(p.Kind)
			case ReferenceMissing:
				c = &cause{node: id, kind: ReferenceMissing}
				goneWhy[id] = "narinfo missing"
			}
			if c != nil {
				break
			}
		}
		if c == nil { // only signature problems
			for _, p := range broken[id] {
				p.Detail += "; not in the local store, so it cannot be signed again"
				plan.Unrepairable = append(plan.Unrepairable, p)
			}
			continue
		}
		plan.causes = append(plan.causes, *c)
		gone = append(gone, id)
	}
	slices.Sort(plan.Republish)
	plan.Republish = slices.Compact(plan.Republish)

	// Everything that depends on a gone path goes with it, referrers first.
	removed := make(map[scan.ID]bool)
	for _, id := range g.ReferrersFirst(g.Dependents(gone)) {
		n := g.Node(id)
		if n.State == scan.Missing {
			continue // no narinfo to delete
		}
		removed[id] = true
		reason := goneWhy[id]
		if reason == "" {
			c := firstIn(g, id, setOf(gone))
			reason = "depends on " + g.Node(c).Base() + " (" + goneWhy[c] + ")"
		}
		plan.Remove = append(plan.Remove, Removal{Key: n.Key(), StorePath: g.StorePath(id), Reason: reason, node: id})
		if n.Listing {
			plan.Listings = append(plan.Listings, scan.ListingKey(n.HashPart))
		}
	}
	if len(removed) > 0 {
		plan.Republish = slices.DeleteFunc(plan.Republish, func(sp string) bool {
			id, ok := g.LookupPath(sp)
			return ok && removed[id]
		})
	}
	// The NARs of removed narinfos become orphans, unless a narinfo that
	// stays uses them.
	for id := range removed {
		n := g.Node(id)
		if n.State != scan.Valid || g.NarStatus(id) == scan.NarMissing || g.NarStatus(id) == scan.NarExternal {
			continue
		}
		used := false
		for _, u := range g.NarUsers(n.URL) {
			if !removed[u] {
				used = true
			}
		}
		if !used && !slices.Contains(plan.Orphans, n.URL) {
			plan.Orphans = append(plan.Orphans, n.URL)
		}
	}
	slices.Sort(plan.Orphans)
	return plan, nil
}

func setOf(ids []scan.ID) map[scan.ID]bool {
	m := make(map[scan.ID]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// Empty reports whether the plan does nothing.
func (p *Plan) Empty() bool {
	return p.Refused != "" || (!p.CreateCacheInfo && len(p.Republish) == 0 && len(p.Remove) == 0 &&
		(!p.DeleteOrphans || len(p.Orphans)+len(p.Pending) == 0))
}

// WriteText writes the plan for a person, listing at most max entries per
// part (all when max <= 0).
func (p *Plan) WriteText(w io.Writer, max int) error {
	var b strings.Builder
	list := func(items []string) {
		for i, s := range items {
			if max > 0 && i == max {
				fmt.Fprintf(&b, "    ... and %d more\n", len(items)-max)
				break
			}
			fmt.Fprintf(&b, "    %s\n", s)
		}
	}
	if p.Refused != "" {
		fmt.Fprintf(&b, "repair refused: %s\n", p.Refused)
		_, err := io.WriteString(w, b.String())
		return err
	}
	b.WriteString("repair plan:\n")
	if p.Empty() && len(p.Unrepairable) == 0 && len(p.Orphans)+len(p.Pending) == 0 {
		b.WriteString("  nothing to do\n")
	}
	if p.CreateCacheInfo {
		b.WriteString("  create nix-cache-info\n")
	}
	if len(p.Republish) > 0 {
		fmt.Fprintf(&b, "  publish %d paths again from the local store (references first):\n", len(p.Republish))
		list(p.Republish)
	}
	if len(p.Remove) > 0 {
		fmt.Fprintf(&b, "  remove %d narinfos whose paths are gone and not in the local store (referrers first):\n", len(p.Remove))
		var items []string
		for _, r := range p.Remove {
			items = append(items, fmt.Sprintf("%s  %s: %s", r.Key, r.StorePath, r.Reason))
		}
		list(items)
	}
	if len(p.Listings) > 0 {
		fmt.Fprintf(&b, "  remove the %d NAR listings (.ls) of removed narinfos\n", len(p.Listings))
	}
	if len(p.Orphans)+len(p.Pending) > 0 {
		verb := "delete"
		if !p.DeleteOrphans {
			verb = "leave (no --delete-orphans)"
		}
		fmt.Fprintf(&b, "  %s %d orphan NARs and %d unfinished uploads older than the grace period\n", verb, len(p.Orphans), len(p.Pending))
		if p.DeleteOrphans {
			list(p.Orphans)
		}
	}
	if len(p.Unrepairable) > 0 {
		fmt.Fprintf(&b, "  cannot repair %d problems:\n", len(p.Unrepairable))
		var items []string
		for _, u := range p.Unrepairable {
			items = append(items, fmt.Sprintf("%s %s: %s", u.Kind, u.Key, u.Detail))
		}
		list(items)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// RepairResult counts what Repair did.
type RepairResult struct {
	CacheInfoCreated bool     `json:"cache_info_created"`
	Republished      int      `json:"republished"`
	Failed           []string `json:"failed,omitempty"` // paths that could not be published, with why
	Removed          int      `json:"removed"`
	Kept             int      `json:"kept"` // planned removals skipped: the path was mended meanwhile
	Listings         int      `json:"listings_removed"`
	OrphansDeleted   int      `json:"orphans_deleted"`
	OrphanBytes      int64    `json:"orphan_bytes_deleted"`
	Aborted          int      `json:"uploads_aborted"`
}

// Repair carries out plan. Each step keeps the cache consistent for Nix
// clients, so it is safe to interrupt anywhere:
//
//  1. nix-cache-info is created when missing.
//  2. Paths are published again through pub, references first; a narinfo
//     is only overwritten once its new NAR and its references are in place.
//  3. Before anything is deleted, each gone path is looked at again (its
//     narinfo read afresh, its NAR or narinfo looked up); one that was
//     mended meanwhile, by a builder publishing it, is kept with the
//     narinfos that depend on it. The rest are deleted referrers first, so
//     no remaining narinfo ever points at a narinfo deleted before it.
//     Their .ls listings follow.
//  4. With plan.DeleteOrphans, the NARs of the plan, and those that paths
//     published again no longer use (published with another compression,
//     say), are listed again and each one still older than cfg.Grace and
//     not used by a path published again is deleted (a builder uploading
//     the same NAR again makes it young), and unfinished uploads still
//     there and older than cfg.Grace are aborted.
//
// A failing publication is recorded in the result and the repair goes on;
// a failing lookup or deletion stops it with the error. A refused plan
// does nothing.
func Repair(ctx context.Context, cache uploader.Cache, pub Publisher, g *scan.Graph, plan *Plan, cfg Config, log *zap.Logger) (RepairResult, error) {
	var res RepairResult
	if plan.Refused != "" {
		return res, nil
	}
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("repair")
	c := &checker{cfg: cfg, cache: cache, log: log, fresh: make(map[string]*freshNarInfo)}
	total := len(plan.Republish) + len(plan.Remove) + len(plan.Listings)
	if plan.DeleteOrphans {
		total += len(plan.Orphans) + len(plan.Pending)
	}
	pp := c.startProgress(PhaseRepair, total)
	defer pp.stop()

	if plan.CreateCacheInfo {
		if err := pub.EnsureCacheInfo(ctx); err != nil {
			return res, fmt.Errorf("verify: repair: %w", err)
		}
		res.CacheInfoCreated = true
	}
	// NARs in use again after the republishing: never orphans, whatever
	// the report said (a path published again under its old NAR key).
	inUse := make(map[string]bool)
	orphans := plan.Orphans
	if len(plan.Republish) > 0 {
		var ok []string
		var mu sync.Mutex // done runs concurrently, once per root
		pub.Republish(ctx, plan.Republish, func(root string, r uploader.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			pp.add(1, r.Bytes)
			if err != nil {
				log.Warn("could not publish a path again", zap.String("path", root), zap.Error(err))
				res.Failed = append(res.Failed, root+": "+err.Error())
				return
			}
			res.Republished++
			ok = append(ok, root)
		})
		slices.Sort(res.Failed)
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("verify: repair: %w", err)
		}
		if plan.DeleteOrphans {
			var err error
			if orphans, err = c.replacedNars(ctx, g, plan, ok, inUse); err != nil {
				return res, fmt.Errorf("verify: repair: %w", err)
			}
		}
	}

	if len(plan.Remove) > 0 {
		still, err := c.stillGone(ctx, g, plan.causes)
		if err != nil {
			return res, fmt.Errorf("verify: repair: %w", err)
		}
		keep := make(map[scan.ID]bool)
		if len(still) < len(plan.causes) {
			// Only what depends on a path that is still gone goes.
			doomed := setOf(g.Dependents(still))
			for _, r := range plan.Remove {
				if !doomed[r.node] {
					keep[r.node] = true
				}
			}
		}
		removed := make(map[string]bool)
		for _, r := range plan.Remove {
			if keep[r.node] {
				res.Kept++
				continue
			}
			if err := cache.Delete(ctx, r.Key); err != nil {
				return res, fmt.Errorf("verify: repair: %w", err)
			}
			log.Info("removed narinfo", zap.String("key", r.Key), zap.String("path", r.StorePath), zap.String("reason", r.Reason))
			removed[scan.HashPart(r.Key)] = true
			res.Removed++
			pp.add(1, 0)
		}
		for _, l := range plan.Listings {
			if !removed[scan.HashPart(l)] {
				continue
			}
			if err := cache.Delete(ctx, l); err != nil {
				return res, fmt.Errorf("verify: repair: %w", err)
			}
			res.Listings++
			pp.add(1, 0)
		}
	}

	if plan.DeleteOrphans {
		if err := c.deleteOrphans(ctx, orphans, plan.Pending, inUse, &res, pp); err != nil {
			return res, fmt.Errorf("verify: repair: %w", err)
		}
	}
	return res, nil
}

// replacedNars reads the narinfos of the paths published again and
// records the NARs they use in inUse. It returns the plan's orphans plus
// the NARs those paths used before, when nothing else uses them any more
// (the repair published them with another compression, say).
func (c *checker) replacedNars(ctx context.Context, g *scan.Graph, plan *Plan, republished []string, inUse map[string]bool) ([]string, error) {
	again := make(map[scan.ID]bool)
	for _, root := range republished {
		f, err := c.narinfo(ctx, scan.NarInfoKey(path.Base(root)[:32]))
		if err != nil {
			return nil, err
		}
		if f.ni != nil {
			inUse[f.ni.URL] = true
		}
		if id, ok := g.LookupPath(root); ok {
			again[id] = true
		}
	}
	orphans := slices.Clone(plan.Orphans)
	for id := range again {
		n := g.Node(id)
		if n.State != scan.Valid || inUse[n.URL] || slices.Contains(orphans, n.URL) {
			continue
		}
		used := false
		for _, u := range g.NarUsers(n.URL) {
			if !again[u] {
				used = true
			}
		}
		if !used {
			orphans = append(orphans, n.URL)
		}
	}
	slices.Sort(orphans)
	return orphans, nil
}

// stillGone looks at each cause again and returns those still broken.
func (c *checker) stillGone(ctx context.Context, g *scan.Graph, causes []cause) ([]scan.ID, error) {
	keep := make([]bool, len(causes))
	err := parallel(ctx, c.cfg.Concurrency, len(causes), func(ctx context.Context, i int) error {
		cs := causes[i]
		n := g.Node(cs.node)
		switch cs.kind {
		case ReferenceMissing:
			ok, err := c.cache.Has(ctx, n.Key())
			keep[i] = !ok
			return err
		case NarInfoInvalid:
			f, err := c.narinfo(ctx, n.Key())
			keep[i] = err == nil && f.invalid != ""
			return err
		case NarMissing:
			f, err := c.narinfo(ctx, n.Key())
			if err != nil || f.ni == nil {
				return err
			}
			ok, err := c.cache.Has(ctx, f.ni.URL)
			keep[i] = !ok
			return err
		default: // NarSize, NarHash: still the same narinfo, naming the same bad NAR
			f, err := c.narinfo(ctx, n.Key())
			if err != nil || f.ni == nil {
				return err
			}
			keep[i] = f.ni.URL == n.URL && f.ni.NarHash.Equal(n.NarHash) && f.ni.FileSize == n.FileSize
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	var out []scan.ID
	for i, k := range keep {
		if k {
			out = append(out, causes[i].node)
		} else {
			c.log.Info("a path planned for removal was mended meanwhile; keeping it", zap.String("key", g.Node(causes[i].node).Key()))
		}
	}
	return out, nil
}

// deleteOrphans deletes the orphan NARs that are not inUse and
// that a fresh listing still shows older than the grace period, and aborts
// the unfinished uploads that are still there.
func (c *checker) deleteOrphans(ctx context.Context, orphans []string, pending []uploader.PendingUpload, inUse map[string]bool, res *RepairResult, pp *phaseProgress) error {
	if len(orphans) > 0 {
		want := make(map[string]bool, len(orphans))
		for _, k := range orphans {
			want[k] = true
		}
		fresh := make(map[string]uploader.Object)
		if err := c.cache.List(ctx, commonDir(want), func(o uploader.Object) error {
			if want[o.Key] {
				fresh[o.Key] = o
			}
			return nil
		}); err != nil {
			return fmt.Errorf("list NARs again: %w", err)
		}
		for _, k := range orphans {
			o, ok := fresh[k]
			if !ok || inUse[k] || time.Since(o.LastModified) < c.cfg.Grace {
				continue // gone already, or written again by an upload in progress
			}
			if err := c.cache.Delete(ctx, k); err != nil {
				return err
			}
			c.log.Info("deleted orphan NAR", zap.String("key", k), zap.Int64("size", o.Size))
			res.OrphansDeleted++
			res.OrphanBytes += o.Size
			pp.add(1, 0)
		}
	}
	pl, ok := c.cache.(uploader.PendingLister)
	if !ok || len(pending) == 0 {
		return nil
	}
	for _, p := range pending {
		var found *uploader.PendingUpload
		err := pl.ListPending(ctx, p.Key, func(u uploader.PendingUpload) error {
			if u.Key == p.Key && u.ID == p.ID {
				found = &u
			}
			return nil
		})
		if err != nil {
			return err
		}
		if found == nil || time.Since(found.Started) < c.cfg.Grace {
			continue
		}
		if err := pl.AbortPending(ctx, *found); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		c.log.Info("aborted unfinished upload", zap.String("key", p.Key), zap.String("id", p.ID))
		res.Aborted++
		pp.add(1, 0)
	}
	return nil
}

// WriteText writes the result for a person.
func (r RepairResult) WriteText(w io.Writer) error {
	var b strings.Builder
	b.WriteString("repaired:")
	if r.CacheInfoCreated {
		b.WriteString(" created nix-cache-info;")
	}
	fmt.Fprintf(&b, " %d paths published again, %d narinfos and %d listings removed, %d orphan NARs (%s) deleted, %d unfinished uploads aborted\n",
		r.Republished, r.Removed, r.Listings, r.OrphansDeleted, bytesText(r.OrphanBytes), r.Aborted)
	if r.Kept > 0 {
		fmt.Fprintf(&b, "kept:     %d narinfos planned for removal: their paths were mended meanwhile\n", r.Kept)
	}
	for _, f := range r.Failed {
		fmt.Fprintf(&b, "failed:   %s\n", f)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
