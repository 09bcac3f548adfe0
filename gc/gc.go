package gc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/uploader"
)

// Run collects garbage in cache as the package documentation describes and
// returns its report. It blocks until done, ctx is cancelled or a request
// fails; the report then counts what was done, and the bucket is consistent
// (every deletion keeps the invariants). Unless cfg.DryRun it takes the
// bucket's lock first (ErrLocked when another run holds it) and writes the
// report to ReportKey at the end, also after an error. log may be nil.
func Run(ctx context.Context, cache uploader.Cache, cfg Config, log *zap.Logger) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	r := &run{
		cfg:   cfg,
		cache: &counting{Cache: cache},
		log:   log.Named("gc"),
		rep:   &Report{Store: cache.String(), DryRun: cfg.DryRun, Started: cfg.Now().UTC(), Cutoff: cfg.Cutoff.UTC()},
	}
	if !cfg.DryRun {
		lock, err := AcquireLock(ctx, r.cache, cfg.LockTTL, cfg.LockSettle, cfg.Now)
		if err != nil {
			return nil, err
		}
		r.lock = lock
		kctx, stopKeep := context.WithCancel(ctx)
		kept := make(chan struct{})
		go func() { defer close(kept); lock.Keep(kctx) }()
		defer func() {
			stopKeep()
			<-kept
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := lock.Release(rctx); err != nil {
				r.log.Warn("could not release the lock; it expires by itself", zap.Error(err))
			}
		}()
	}
	err := r.collect(ctx)
	r.rep.Finished = cfg.Now().UTC()
	r.rep.Seconds = r.rep.Finished.Sub(r.rep.Started).Seconds()
	if err != nil {
		r.rep.Error = err.Error()
	}
	if !cfg.DryRun {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if werr := WriteReport(wctx, r.cache, r.rep); werr != nil {
			r.log.Warn("could not write the report", zap.Error(werr))
		}
		cancel()
	}
	r.rep.Requests = r.cache.n.Load()
	return r.rep, err
}

type run struct {
	cfg   Config
	cache *counting
	log   *zap.Logger
	rep   *Report
	lock  *Lock

	g    *scan.Graph // the graph deletions are decided on
	mark time.Time   // when the first scan began
	dead map[scan.ID]bool
	urls map[string]bool // NAR keys named by Valid nodes of g
	// staleRoots are root records that keep nothing any more.
	staleRoots []Root
}

func (r *run) progress(phase string, done, total int64) {
	if r.cfg.Progress != nil {
		r.cfg.Progress(Progress{Phase: phase, Done: done, Total: total})
	}
}

func (r *run) scan(ctx context.Context, phase string) (*scan.Graph, error) {
	r.progress(phase, 0, 0)
	g, err := scan.Scan(ctx, r.cache, scan.Config{StoreDir: r.cfg.StoreDir, Concurrency: r.cfg.ScanConcurrency}, r.log)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	return g, nil
}

func (r *run) collect(ctx context.Context) error {
	g0, err := r.scan(ctx, "scan")
	if err != nil {
		return err
	}
	r.mark = g0.Started()
	seeds, err := r.seeds(ctx, g0)
	if err != nil {
		return err
	}
	live := g0.Closure(seeds)
	dead0 := deadSet(g0, live)
	r.g, r.dead = g0, dead0

	if r.cfg.Grace > 0 {
		r.log.Info("waiting for the grace period before sweeping", zap.Duration("grace", r.cfg.Grace), zap.Int("candidates", len(dead0)))
		r.progress("grace", 0, 0)
		if err := sleep(ctx, r.cfg.Grace); err != nil {
			return err
		}
		g1, err := r.scan(ctx, "rescan")
		if err != nil {
			return err
		}
		seeds, err := r.seeds(ctx, g1)
		if err != nil {
			return err
		}
		// Everything that was not a candidate at the mark, or changed since,
		// is live now, with its closure.
		for id := range g1.Len() {
			n := g1.Node(scan.ID(id))
			if n.State == scan.Missing {
				continue
			}
			old, ok := g0.Lookup(n.HashPart)
			if !ok || !dead0[old] || !g0.Node(old).Modified.Equal(n.Modified) {
				seeds = append(seeds, scan.ID(id))
			}
		}
		r.g, r.dead = g1, deadSet(g1, g1.Closure(seeds))
	}
	r.urls = make(map[string]bool, r.g.Len())
	for id := range r.g.Len() {
		if n := r.g.Node(scan.ID(id)); n.State == scan.Valid {
			r.urls[n.URL] = true
		}
	}
	r.tallyPlan()
	if r.cfg.DryRun {
		r.progress("done", 0, 0)
		return nil
	}
	return r.sweep(ctx)
}

// deadSet returns the Valid nodes of g outside live.
func deadSet(g *scan.Graph, live []scan.ID) map[scan.ID]bool {
	isLive := make([]bool, g.Len())
	for _, id := range live {
		isLive[id] = true
	}
	dead := make(map[scan.ID]bool)
	for id := range g.Len() {
		if !isLive[id] && g.Node(scan.ID(id)).State == scan.Valid {
			dead[scan.ID(id)] = true
		}
	}
	return dead
}

// seeds returns the nodes whose closures are kept: recent and unreadable
// narinfos, roots re-asserted since the cutoff and pinned paths. It reads
// the root records and pins, and fills the report's seed counts.
func (r *run) seeds(ctx context.Context, g *scan.Graph) ([]scan.ID, error) {
	var seeds []scan.ID
	r.rep.Recent, r.rep.Invalid, r.rep.Roots, r.rep.Pinned = 0, 0, 0, 0
	r.rep.MissingPins = nil
	for id := range g.Len() {
		n := g.Node(scan.ID(id))
		switch {
		case n.State == scan.Invalid:
			r.rep.Invalid++
			seeds = append(seeds, scan.ID(id))
		case n.State == scan.Valid && !n.Modified.Before(r.cfg.Cutoff):
			r.rep.Recent++
			seeds = append(seeds, scan.ID(id))
		}
	}
	r.staleRoots = nil
	err := ListRoots(ctx, r.cache, func(root Root) error {
		if root.Until().Before(r.cfg.Cutoff) {
			r.staleRoots = append(r.staleRoots, root)
			return nil
		}
		if id, ok := g.Lookup(root.HashPart); ok && g.Node(id).State != scan.Missing {
			r.rep.Roots++
			seeds = append(seeds, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	pins, err := ListPins(ctx, r.cache, r.cfg.StoreDir)
	if err != nil {
		return nil, err
	}
	for _, p := range pins {
		for _, path := range p.Paths {
			if id, ok := g.LookupPath(path); ok && g.Node(id).State != scan.Missing {
				r.rep.Pinned++
				seeds = append(seeds, id)
			} else {
				r.rep.MissingPins = append(r.rep.MissingPins, p.Name+": "+path)
			}
		}
	}
	return seeds, nil
}

// tallyPlan fills the report from r.g and r.dead as if every planned
// deletion happens; the sweep corrects it for what it restores or skips.
func (r *run) tallyPlan() {
	g := r.g
	var kept, del Tally
	used := make(map[string]bool)
	for id := range g.Len() {
		n := g.Node(scan.ID(id))
		switch {
		case n.State == scan.Missing:
		case r.dead[scan.ID(id)]:
			del.NarInfos.add(n.Size)
		default:
			kept.NarInfos.add(n.Size)
			if n.State == scan.Valid {
				used[n.URL] = true
			}
		}
	}
	for _, o := range g.Nars() {
		if !used[o.Key] && r.narDeletable(o) {
			del.Nars.add(o.Size)
		} else {
			kept.Nars.add(o.Size)
		}
	}
	for _, o := range g.Others(scan.ClassListing) {
		if r.listingDeletable(o.Object, func(h string) bool {
			id, ok := g.Lookup(h)
			return ok && g.Node(id).State != scan.Missing && !r.dead[id]
		}) {
			del.Listings.add(o.Size)
		} else {
			kept.Listings.add(o.Size)
		}
	}
	for _, root := range r.staleRoots {
		del.Roots.add(root.Size)
	}
	for _, p := range g.Pending() {
		if r.pendingDeletable(p) {
			del.Pending.add(0)
		}
	}
	r.rep.Kept, r.rep.Deleted = kept, del
}

// narDeletable reports whether a NAR that no kept narinfo uses may go: it
// has not been written since the mark (a builder publishing a path with
// the same contents rewrites it), and it is not the NAR of an upload in
// progress (one no narinfo of the graph names is deleted only when older
// than the cutoff, and not at all when some narinfo cannot be read: it may
// be that narinfo's).
func (r *run) narDeletable(o uploader.Object) bool {
	if !o.LastModified.Before(r.mark) {
		return false
	}
	if !r.urls[o.Key] && (r.rep.Invalid > 0 || !o.LastModified.Before(r.cfg.Cutoff)) {
		// Unused by any readable narinfo: an upload in progress, or the NAR
		// of a narinfo this version cannot read, which is kept.
		return false
	}
	return true
}

// listingDeletable: the listing of a path whose narinfo is not kept
// (present reports whether it is), not rewritten since the mark; an
// orphaned one only when older than the cutoff.
func (r *run) listingDeletable(o uploader.Object, present func(hash string) bool) bool {
	h := scan.HashPart(o.Key)
	if present(h) || !o.LastModified.Before(r.mark) {
		return false
	}
	if id, ok := r.g.Lookup(h); ok && r.dead[id] {
		return true
	}
	return o.LastModified.Before(r.cfg.Cutoff)
}

func (r *run) pendingDeletable(p uploader.PendingUpload) bool {
	return !p.Started.IsZero() && p.Started.Before(r.cfg.Cutoff) && p.Started.Before(r.mark.Add(-24*time.Hour))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("gc: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// isNotExist reports a missing object.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
