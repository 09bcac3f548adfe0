package gc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/uploader"
)

// sweep deletes what r.dead and the listings allow, in the order and with
// the settle steps of the package documentation, and then fills the report
// from a last listing.
func (r *run) sweep(ctx context.Context) error {
	var deleted Tally
	defer func() { r.rep.Deleted = deleted }()

	// 1. Narinfos, referrers first, keeping their bytes for a restore.
	texts := make(map[scan.ID][]byte, len(r.dead))
	var mu sync.Mutex
	var done atomic.Int64
	total := int64(len(r.dead))
	for _, layer := range referrersFirst(r.g, r.dead) {
		err := forEach(ctx, r.cfg.Concurrency, layer, func(ctx context.Context, id scan.ID) error {
			n := r.g.Node(id)
			text, err := r.read(ctx, n.Key())
			if isNotExist(err) {
				return nil // gone already
			}
			if err != nil {
				return err
			}
			if err := r.delete(ctx, n.Key()); err != nil {
				return err
			}
			mu.Lock()
			texts[id] = text
			deleted.NarInfos.add(int64(len(text)))
			mu.Unlock()
			r.progress("narinfos", done.Add(1), total)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(texts) > 0 {
		r.log.Info("deleted narinfos", zap.Int("count", len(texts)))
	}

	// 2. Settle, then write back what a narinfo published meanwhile needs.
	cur, fresh, err := r.settle(ctx, len(texts) > 0, nil)
	if err != nil {
		return err
	}
	restored, err := r.restore(ctx, cur, fresh, texts)
	if err != nil {
		return err
	}
	for _, id := range restored {
		deleted.NarInfos.Objects--
		deleted.NarInfos.Bytes -= int64(len(texts[id]))
		delete(texts, id)
		cur.narinfos[r.g.Node(id).HashPart] = uploader.Object{Key: r.g.Node(id).Key()}
	}

	// 3. NARs no remaining narinfo uses, and listings.
	used := make(map[string]bool)
	for h := range cur.narinfos {
		if ni := fresh[h]; ni != nil {
			used[ni.url] = true
		} else if id, ok := r.g.Lookup(h); ok && r.g.Node(id).State == scan.Valid {
			used[r.g.Node(id).URL] = true
		}
	}
	var nars, lss []uploader.Object
	for k, o := range cur.nars {
		if !used[k] && r.narDeletable(o) {
			nars = append(nars, o)
		}
	}
	for h, o := range cur.listings {
		if r.listingDeletable(o, func(string) bool { _, ok := cur.narinfos[h]; return ok }) {
			lss = append(lss, o)
		}
	}
	deletedNars := make(map[string]bool, len(nars))
	if err := r.deleteObjects(ctx, "nars", nars, &deleted.Nars, func(k string) {
		mu.Lock()
		deletedNars[k] = true
		mu.Unlock()
	}); err != nil {
		return err
	}
	if err := r.deleteObjects(ctx, "listings", lss, &deleted.Listings, nil); err != nil {
		return err
	}

	// 4. Settle, then retract narinfos published meanwhile with a NAR
	// deleted in step 3.
	known := func(h string, o uploader.Object) bool {
		if ni := fresh[h]; ni != nil {
			return ni.modified.Equal(o.LastModified)
		}
		return false
	}
	if len(deletedNars) > 0 {
		_, fresh2, err := r.settle(ctx, true, known)
		if err != nil {
			return err
		}
		if err := r.retract(ctx, fresh2, deletedNars); err != nil {
			return err
		}
	}

	// 5. Root records that keep nothing, and old unfinished uploads.
	var roots []uploader.Object
	for _, root := range r.staleRoots {
		roots = append(roots, uploader.Object{Key: root.Key, Size: root.Size})
	}
	if err := r.deleteObjects(ctx, "roots", roots, &deleted.Roots, nil); err != nil {
		return err
	}
	for _, p := range r.g.Pending() {
		if !r.pendingDeletable(p) {
			continue
		}
		if err := r.lock.Held(); err != nil {
			return err
		}
		if r.cfg.BeforeDelete != nil {
			if err := r.cfg.BeforeDelete(p.Key); err != nil {
				return err
			}
		}
		if err := r.cache.AbortPending(ctx, p); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		deleted.Pending.add(0)
	}

	last, err := r.list(ctx)
	if err != nil {
		return err
	}
	r.rep.Kept = last.tally
	r.progress("done", 0, 0)
	return nil
}

// settle waits Config.Settle (when wait is set), lists the bucket and reads
// the narinfos the graph does not know as listed (new, or rewritten since
// the scan) and that known does not know either.
func (r *run) settle(ctx context.Context, wait bool, known func(string, uploader.Object) bool) (*listing, map[string]*fresh, error) {
	if wait && r.cfg.Settle > 0 {
		r.progress("settle", 0, 0)
		if err := sleep(ctx, r.cfg.Settle); err != nil {
			return nil, nil, err
		}
	}
	cur, err := r.list(ctx)
	if err != nil {
		return nil, nil, err
	}
	var todo []string
	for h, o := range cur.narinfos {
		if id, ok := r.g.Lookup(h); ok && r.g.Node(id).State != scan.Missing && r.g.Node(id).Modified.Equal(o.LastModified) {
			continue
		}
		if known != nil && known(h, o) {
			continue
		}
		todo = append(todo, h)
	}
	slices.Sort(todo)
	out := make(map[string]*fresh, len(todo))
	var mu sync.Mutex
	err = forEach(ctx, r.cfg.Concurrency, todo, func(ctx context.Context, h string) error {
		text, err := r.read(ctx, h+".narinfo")
		if isNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		ni, err := nix.ParseNarInfo(text)
		if err != nil {
			r.log.Warn("a narinfo written during the run does not parse; ignoring it", zap.String("key", h+".narinfo"), zap.Error(err))
			return nil
		}
		f := &fresh{url: ni.URL, modified: cur.narinfos[h].LastModified}
		for _, ref := range ni.References {
			if rh := ref[:min(32, len(ref))]; rh != h {
				f.refs = append(f.refs, rh)
			}
		}
		mu.Lock()
		out[h] = f
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return cur, out, nil
}

// fresh is a narinfo written since the scan.
type fresh struct {
	url      string
	refs     []string // hash parts, without the path itself
	modified time.Time
}

// restore writes back the deleted narinfos that narinfos written since the
// scan reference, with the deleted narinfos those reference, references
// first, from the bytes read before deleting them. It returns them.
func (r *run) restore(ctx context.Context, cur *listing, fr map[string]*fresh, texts map[scan.ID][]byte) ([]scan.ID, error) {
	need := make(map[scan.ID]bool)
	var stack []scan.ID
	want := func(h string) {
		id, ok := r.g.Lookup(h)
		if !ok || texts[id] == nil || need[id] {
			return
		}
		if _, back := cur.narinfos[h]; back {
			return // uploaded again by a builder
		}
		need[id] = true
		stack = append(stack, id)
	}
	for _, f := range fr {
		for _, h := range f.refs {
			want(h)
		}
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, ref := range r.g.Node(id).Refs {
			want(r.g.Node(ref).HashPart)
		}
	}
	if len(need) == 0 {
		return nil, nil
	}
	layers := referrersFirst(r.g, need)
	slices.Reverse(layers)
	var out []scan.ID
	for _, layer := range layers {
		for _, id := range layer {
			n := r.g.Node(id)
			if err := r.cache.Put(ctx, n.Key(), bytes.NewReader(texts[id]), uploader.PutOptions{
				ContentType: "text/x-nix-narinfo", Size: int64(len(texts[id])),
			}); err != nil {
				return out, fmt.Errorf("gc: restore %s: %w", n.Key(), err)
			}
			out = append(out, id)
		}
	}
	r.rep.Restored += len(out)
	r.log.Warn("restored narinfos that builders referenced while gc deleted them", zap.Int("count", len(out)))
	return out, nil
}

// retract deletes the narinfos written since the scan whose NAR this run
// deleted, and those written since that reference them, referrers first.
func (r *run) retract(ctx context.Context, fr map[string]*fresh, deletedNars map[string]bool) error {
	bad := make(map[string]bool)
	for h, f := range fr {
		if deletedNars[f.url] {
			bad[h] = true
		}
	}
	for changed := len(bad) > 0; changed; {
		changed = false
		for h, f := range fr {
			if bad[h] {
				continue
			}
			for _, ref := range f.refs {
				if bad[ref] {
					bad[h], changed = true, true
					break
				}
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	// Referrers first: repeatedly take those no other bad one references.
	for len(bad) > 0 {
		referenced := make(map[string]bool)
		for h := range bad {
			for _, ref := range fr[h].refs {
				referenced[ref] = true
			}
		}
		var layer []string
		for h := range bad {
			if !referenced[h] {
				layer = append(layer, h)
			}
		}
		if len(layer) == 0 { // a reference cycle; cannot happen with store paths
			for h := range bad {
				layer = append(layer, h)
			}
		}
		for _, h := range layer {
			if err := r.delete(ctx, h+".narinfo"); err != nil {
				return err
			}
			delete(bad, h)
			r.rep.Retracted++
		}
	}
	r.log.Warn("retracted narinfos published during the run whose NAR the run had deleted; their builders upload them again at the next push",
		zap.Int("count", r.rep.Retracted))
	return nil
}

// deleteObjects deletes objs with Config.Concurrency deletions in flight,
// counting them into c and calling after (if set) for each.
func (r *run) deleteObjects(ctx context.Context, phase string, objs []uploader.Object, c *Count, after func(string)) error {
	var mu sync.Mutex
	var done atomic.Int64
	slices.SortFunc(objs, func(a, b uploader.Object) int { return cmpString(a.Key, b.Key) })
	return forEach(ctx, r.cfg.Concurrency, objs, func(ctx context.Context, o uploader.Object) error {
		if err := r.delete(ctx, o.Key); err != nil {
			return err
		}
		mu.Lock()
		c.add(o.Size)
		mu.Unlock()
		if after != nil {
			after(o.Key)
		}
		r.progress(phase, done.Add(1), int64(len(objs)))
		return nil
	})
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

// delete deletes key if the lock is still held.
func (r *run) delete(ctx context.Context, key string) error {
	if err := r.lock.Held(); err != nil {
		return err
	}
	if r.cfg.BeforeDelete != nil {
		if err := r.cfg.BeforeDelete(key); err != nil {
			return err
		}
	}
	if err := r.cache.Delete(ctx, key); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return nil
}

func (r *run) read(ctx context.Context, key string) ([]byte, error) {
	rc, err := r.cache.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("gc: read %s: %w", key, err)
	}
	return data, nil
}

// forEach calls fn for every item with n calls at once. The first error
// stops the others from starting and is returned.
func forEach[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		next     = make(chan T)
	)
	for range max(1, min(n, len(items))) {
		wg.Go(func() {
			for it := range next {
				if err := fn(ctx, it); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
feed:
	for _, it := range items {
		select {
		case next <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("gc: %w", ctx.Err())
	}
	return firstErr
}
