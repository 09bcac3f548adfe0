package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/uploader"
)

// Check scans cache and returns the report of every problem it found and
// confirmed, with the graph it found them in. cfg is validated and
// defaulted; log may be nil. Check only reads: it writes and deletes
// nothing.
//
// A listing is not a snapshot, so every problem the scan suggests is
// confirmed with direct lookups (a fresh read of the narinfo, Has of the
// NAR or reference, a fresh listing of the NAR's key) before it is
// reported; problems the lookups disprove are counted in
// Report.Dismissed. Unreferenced NARs and unfinished uploads younger than
// cfg.Grace are not problems (Report.Recent). A healthy cache that
// builders are publishing into therefore gives a clean report.
//
// The error is non-nil only when the cache could not be checked: listing
// or reading failed, or ctx is done.
func Check(ctx context.Context, cache uploader.Cache, cfg Config, log *zap.Logger) (*Report, *scan.Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	c := &checker{cfg: cfg, cache: cache, log: log.Named("verify"), fresh: make(map[string]*freshNarInfo)}
	scfg := scan.Config{StoreDir: cfg.StoreDir, Concurrency: cfg.Concurrency, TrustedKeys: cfg.TrustedKeys, ProgressInterval: cfg.ProgressInterval}
	if cfg.Progress != nil {
		scfg.Progress = func(p scan.Progress) { cfg.Progress(Progress{Phase: PhaseScan, Scan: p, Last: p.Done}) }
	}
	g, err := scan.Scan(ctx, cache, scfg, log)
	if err != nil {
		return nil, nil, fmt.Errorf("verify: %w", err)
	}
	r, err := c.check(ctx, g)
	if err != nil {
		return nil, nil, err
	}
	r.Duration = time.Since(g.Started()).Seconds()
	return r, g, nil
}

type checker struct {
	cfg   Config
	cache uploader.Cache
	log   *zap.Logger

	mu    sync.Mutex
	fresh map[string]*freshNarInfo // narinfo key -> its second read
}

// candidate is a problem seen in the scan, reported only if confirm says
// it still holds. confirm may update the problem (a size, a detail).
type candidate struct {
	p       Problem
	confirm func(ctx context.Context, p *Problem) (bool, error)
}

func (c *checker) check(ctx context.Context, g *scan.Graph) (*Report, error) {
	st := g.Stats()
	r := &Report{
		Store:    c.cache.String(),
		Started:  g.Started(),
		Objects:  st.Objects,
		Bytes:    st.Bytes,
		NarInfos: st.Valid + st.Invalid,
		Nars:     st.ByClass[scan.ClassNar].Objects,
		NarBytes: st.ByClass[scan.ClassNar].Bytes,
	}
	cands, err := c.candidates(ctx, g, r)
	if err != nil {
		return nil, err
	}
	confirmed, err := c.confirm(ctx, cands, r)
	if err != nil {
		return nil, err
	}
	// Closures broken further down follow from the confirmed causes.
	cands = c.incomplete(g, confirmed)
	more, err := c.confirm(ctx, cands, r)
	if err != nil {
		return nil, err
	}
	confirmed = append(confirmed, more...)
	if c.cfg.CheckNarHashes {
		cands, err := c.hashNars(ctx, g, r)
		if err != nil {
			return nil, err
		}
		more, err := c.confirm(ctx, cands, r)
		if err != nil {
			return nil, err
		}
		confirmed = append(confirmed, more...)
	}
	for _, p := range confirmed {
		r.add(p)
	}
	r.finish()
	return r, nil
}

// candidates lists what the scan suggests is wrong.
func (c *checker) candidates(ctx context.Context, g *scan.Graph, r *Report) ([]candidate, error) {
	var out []candidate
	ci := g.CacheInfo()
	switch {
	case !ci.Present:
		out = append(out, candidate{
			p: Problem{Kind: CacheInfoMissing, Key: "nix-cache-info", Detail: "missing: Nix clients refuse a cache without it", node: -1},
			confirm: func(ctx context.Context, _ *Problem) (bool, error) {
				ok, err := c.cache.Has(ctx, "nix-cache-info")
				return !ok, err
			},
		})
	case ci.StoreDir != "" && ci.StoreDir != c.cfg.StoreDir:
		out = append(out, candidate{
			p: Problem{Kind: CacheInfoStoreDir, Key: "nix-cache-info", node: -1,
				Detail: fmt.Sprintf("StoreDir is %s, not %s: Nix clients of %s refuse every path", ci.StoreDir, c.cfg.StoreDir, c.cfg.StoreDir)},
			confirm: c.confirmStoreDir,
		})
	}

	var narStat []candidate // confirmed with one fresh listing of nar/
	for i := range g.Len() {
		id := scan.ID(i)
		n := g.Node(id)
		base := Problem{Key: n.Key(), StorePath: g.StorePath(id), node: id}
		switch n.State {
		case scan.Invalid:
			p := base
			p.Kind, p.Detail = NarInfoInvalid, "cannot be used: "+n.Err
			out = append(out, candidate{p: p, confirm: c.confirmInvalid})
			continue
		case scan.Missing:
			continue
		}
		switch g.NarStatus(id) {
		case scan.NarMissing:
			p := base
			p.Kind, p.Other, p.Detail = NarMissing, n.URL, "its NAR "+n.URL+" is missing"
			out = append(out, candidate{p: p, confirm: c.confirmNarMissing})
		case scan.NarSizeMismatch:
			o, _ := g.Nar(n.URL)
			p := base
			p.Kind, p.Other, p.Size = NarSize, n.URL, o.Size
			p.Detail = fmt.Sprintf("its NAR %s has %d bytes, but FileSize is %d", n.URL, o.Size, n.FileSize)
			narStat = append(narStat, candidate{p: p})
		}
		switch n.Sig {
		case scan.SigNone:
			p := base
			p.Kind, p.Detail = SignatureMissing, "has no signature"
			out = append(out, candidate{p: p, confirm: c.confirmSig})
		case scan.SigUntrusted:
			p := base
			p.Kind, p.Detail = SignatureUntrusted, "signed by "+n.Signers+" only: no signature verifies under a trusted key"
			out = append(out, candidate{p: p, confirm: c.confirmSig})
		}
		for _, ref := range n.Refs {
			rn := g.Node(ref)
			if rn.State != scan.Missing {
				continue
			}
			p := base
			p.Kind, p.Other = ReferenceMissing, rn.Key()
			p.Detail = "references " + rn.Base() + ", which has no narinfo"
			out = append(out, candidate{p: p, confirm: c.confirmRefMissing})
		}
	}

	now := time.Now()
	for _, o := range g.Orphans() {
		age := now.Sub(o.LastModified)
		if age < c.cfg.Grace {
			r.Recent++
			continue
		}
		narStat = append(narStat, candidate{p: Problem{Kind: OrphanNar, Key: o.Key, Size: o.Size, Age: age.Seconds(), node: -1,
			Detail: fmt.Sprintf("no narinfo uses it (%s, unchanged for %s)", bytesText(o.Size), ageText(age))}})
	}
	pending := 0
	for _, p := range g.Pending() {
		age := now.Sub(p.Started)
		if age < c.cfg.Grace {
			r.Recent++
			continue
		}
		pending++
		out = append(out, candidate{
			p: Problem{Kind: PendingUpload, Key: p.Key, UploadID: p.ID, Age: age.Seconds(), node: -1,
				Detail: fmt.Sprintf("an upload started %s ago was never finished", ageText(age))},
			confirm: c.confirmPending,
		})
	}
	if len(narStat) > 0 {
		confirmed, err := c.confirmNarStats(ctx, g, narStat)
		if err != nil {
			return nil, err
		}
		r.Dismissed += len(narStat) - len(confirmed)
		for _, p := range confirmed {
			out = append(out, candidate{p: p}) // confirmed already
		}
	}
	return out, nil
}

// confirm runs the confirmations of cands, Concurrency at once, and returns
// the problems that still hold.
func (c *checker) confirm(ctx context.Context, cands []candidate, r *Report) ([]Problem, error) {
	keep := make([]bool, len(cands))
	done := c.startProgress(PhaseConfirm, len(cands))
	err := parallel(ctx, c.cfg.Concurrency, len(cands), func(ctx context.Context, i int) error {
		defer done.add(1, 0)
		if cands[i].confirm == nil {
			keep[i] = true
			return nil
		}
		ok, err := cands[i].confirm(ctx, &cands[i].p)
		keep[i] = ok
		return err
	})
	done.stop()
	if err != nil {
		return nil, fmt.Errorf("verify: confirm problems: %w", err)
	}
	var out []Problem
	for i, k := range keep {
		if k {
			out = append(out, cands[i].p)
		} else {
			r.Dismissed++
			c.log.Debug("problem not confirmed by a direct lookup", zap.String("kind", string(cands[i].p.Kind)), zap.String("key", cands[i].p.Key))
		}
	}
	return out, nil
}

// incomplete returns the narinfos whose closure contains a confirmed
// missing or invalid narinfo, but which do not reference a missing one
// directly (those have reference-missing problems).
func (c *checker) incomplete(g *scan.Graph, confirmed []Problem) []candidate {
	broken := make(map[scan.ID]bool)
	direct := make(map[scan.ID]bool)
	for _, p := range confirmed {
		switch p.Kind {
		case NarInfoInvalid:
			broken[p.node] = true
		case ReferenceMissing:
			if id, ok := g.Lookup(scan.HashPart(p.Other)); ok {
				broken[id] = true
			}
			direct[p.node] = true
		}
	}
	if len(broken) == 0 {
		return nil
	}
	var causes []scan.ID
	for id := range broken {
		causes = append(causes, id)
	}
	var out []candidate
	for _, id := range g.Dependents(causes) {
		n := g.Node(id)
		if broken[id] || direct[id] || n.State != scan.Valid {
			continue
		}
		cause := firstIn(g, id, broken)
		cn := g.Node(cause)
		out = append(out, candidate{
			p: Problem{Kind: ClosureIncomplete, Key: n.Key(), StorePath: g.StorePath(id), Other: cn.Key(), node: id,
				Detail: fmt.Sprintf("its closure is incomplete: %s is %s", cn.Base(), map[scan.State]string{scan.Missing: "missing", scan.Invalid: "invalid"}[cn.State])},
			confirm: func(ctx context.Context, p *Problem) (bool, error) {
				return c.cache.Has(ctx, p.Key)
			},
		})
	}
	return out
}

// firstIn returns the first node of set met in a breadth-first walk of
// id's references.
func firstIn(g *scan.Graph, id scan.ID, set map[scan.ID]bool) scan.ID {
	seen := map[scan.ID]bool{id: true}
	queue := []scan.ID{id}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, r := range g.Node(cur).Refs {
			if set[r] {
				return r
			}
			if !seen[r] {
				seen[r] = true
				queue = append(queue, r)
			}
		}
	}
	return id
}

// freshNarInfo is a second read of a narinfo, shared by the confirmations
// of all its problems.
type freshNarInfo struct {
	once    sync.Once
	err     error  // the read failed
	gone    bool   // deleted since the scan
	invalid string // why it cannot be used
	ni      *nix.NarInfo
	fp      string // its fingerprint
}

func (c *checker) narinfo(ctx context.Context, key string) (*freshNarInfo, error) {
	c.mu.Lock()
	f := c.fresh[key]
	if f == nil {
		f = &freshNarInfo{}
		c.fresh[key] = f
	}
	c.mu.Unlock()
	f.once.Do(func() {
		data, err := readLimited(ctx, c.cache, key, scan.DefaultMaxNarInfoSize)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			f.gone = true
		case errors.Is(err, errTooLarge):
			f.invalid = err.Error()
		case err != nil:
			f.err = err
		default:
			ni, _, fp, err := scan.ParseNarInfo(c.cfg.StoreDir, scan.HashPart(key), data)
			if err != nil {
				f.invalid = err.Error()
			} else {
				f.ni, f.fp = ni, fp
			}
		}
	})
	return f, f.err
}

var errTooLarge = errors.New("verify: narinfo too large")

func readLimited(ctx context.Context, cache uploader.Cache, key string, limit int64) ([]byte, error) {
	rc, err := cache.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", errTooLarge, limit)
	}
	return data, nil
}

func (c *checker) confirmInvalid(ctx context.Context, p *Problem) (bool, error) {
	f, err := c.narinfo(ctx, p.Key)
	if err != nil || f.gone || f.invalid == "" {
		return false, err
	}
	p.Detail = "cannot be used: " + f.invalid
	return true, nil
}

func (c *checker) confirmNarMissing(ctx context.Context, p *Problem) (bool, error) {
	f, err := c.narinfo(ctx, p.Key)
	if err != nil || f.ni == nil {
		return false, err
	}
	if f.ni.URL != p.Other {
		p.Other, p.Detail = f.ni.URL, "its NAR "+f.ni.URL+" is missing"
	}
	ok, err := c.cache.Has(ctx, f.ni.URL)
	return !ok, err
}

func (c *checker) confirmSig(ctx context.Context, p *Problem) (bool, error) {
	f, err := c.narinfo(ctx, p.Key)
	if err != nil || f.ni == nil {
		return false, err
	}
	switch scan.CheckSignatures(c.cfg.TrustedKeys, f.fp, f.ni.Sigs) {
	case scan.SigTrusted:
		return false, nil
	case scan.SigNone:
		p.Kind, p.Detail = SignatureMissing, "has no signature"
	}
	return true, nil
}

func (c *checker) confirmRefMissing(ctx context.Context, p *Problem) (bool, error) {
	ok, err := c.cache.Has(ctx, p.Other)
	if err != nil || ok {
		return false, err
	}
	f, err := c.narinfo(ctx, p.Key)
	if err != nil || f.ni == nil {
		return false, err
	}
	for _, r := range f.ni.References {
		if r[:32]+".narinfo" == p.Other {
			return true, nil
		}
	}
	return false, nil
}

func (c *checker) confirmStoreDir(ctx context.Context, p *Problem) (bool, error) {
	data, err := readLimited(ctx, c.cache, "nix-cache-info", 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		p.Kind, p.Detail = CacheInfoMissing, "missing: Nix clients refuse a cache without it"
		return true, nil
	}
	if err != nil {
		return false, err
	}
	ci := scan.ParseCacheInfo(data)
	return ci.StoreDir != "" && ci.StoreDir != c.cfg.StoreDir, nil
}

func (c *checker) confirmPending(ctx context.Context, p *Problem) (bool, error) {
	pl, ok := c.cache.(uploader.PendingLister)
	if !ok {
		return false, nil
	}
	found := false
	err := pl.ListPending(ctx, p.Key, func(u uploader.PendingUpload) error {
		if u.Key == p.Key && u.ID == p.UploadID {
			found = true
		}
		return nil
	})
	return found, err
}

// confirmNarStats confirms NAR size mismatches and orphans with one fresh
// listing of every NAR key they name (one listing of their common
// directory), and fresh reads of the narinfos involved.
func (c *checker) confirmNarStats(ctx context.Context, g *scan.Graph, cands []candidate) ([]Problem, error) {
	want := make(map[string]bool)
	for _, cd := range cands {
		key := cd.p.Key
		if cd.p.Kind == NarSize {
			key = cd.p.Other
		}
		want[key] = true
	}
	now := make(map[string]uploader.Object, len(want))
	err := c.cache.List(ctx, commonDir(want), func(o uploader.Object) error {
		if want[o.Key] {
			now[o.Key] = o
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify: list NARs again: %w", err)
	}
	var out []Problem
	for _, cd := range cands {
		p := cd.p
		switch p.Kind {
		case OrphanNar:
			o, ok := now[p.Key]
			if !ok || time.Since(o.LastModified) < c.cfg.Grace {
				continue
			}
			p.Size = o.Size
			out = append(out, p)
		case NarSize:
			f, err := c.narinfo(ctx, p.Key)
			if err != nil {
				return nil, fmt.Errorf("verify: confirm problems: %w", err)
			}
			if f.ni == nil || f.ni.URL != p.Other {
				continue
			}
			o, ok := now[p.Other]
			if !ok {
				p.Kind, p.Size, p.Detail = NarMissing, 0, "its NAR "+p.Other+" is missing"
				out = append(out, p)
				continue
			}
			if f.ni.FileSize == 0 || uint64(o.Size) == f.ni.FileSize {
				continue
			}
			p.Size = o.Size
			p.Detail = fmt.Sprintf("its NAR %s has %d bytes, but FileSize is %d", p.Other, o.Size, f.ni.FileSize)
			out = append(out, p)
		}
	}
	return out, nil
}

// commonDir is the longest directory prefix ("nar/", or "") of keys.
func commonDir(keys map[string]bool) string {
	dir, first := "", true
	for k := range keys {
		d := ""
		if i := strings.LastIndexByte(k, '/'); i >= 0 {
			d = k[:i+1]
		}
		if first {
			dir, first = d, false
		} else if d != dir {
			return ""
		}
	}
	return dir
}

// parallel calls fn(ctx, i) for i in [0, n) with at most workers calls at
// once. The first error cancels the rest and is returned.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if ctx.Err() != nil {
					continue
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}
