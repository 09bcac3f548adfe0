package uploader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// flight is the upload of one store path (NAR, then narinfo), shared by every
// Upload call, and every referring flight, that needs the path while it runs.
// Fields other than done, err and nar are guarded by Uploader.mu.
type flight struct {
	path  string
	owner *plan // the plan of the call that started it, whose view it uses

	refs     int         // interested callers and referrers; at 0 the flight is cancelled
	urgent   atomic.Bool // an urgent call needs it (see Urgent)
	cancel   context.CancelFunc
	finished bool
	waiters  []chan<- *flight // notified once when finished

	done chan struct{} // closed when finished; err and nar are then final
	err  error
	nar  narResult
}

// refError reports that a path was not published because a path in its
// closure failed: failed is the path whose own upload failed, err its error.
type refError struct {
	path, failed string
	err          error
}

// newRefError reports that path was not published because its reference
// ref failed with err, naming the path at the bottom of the failure.
func newRefError(path, ref string, err error) *refError {
	var re *refError
	if errors.As(err, &re) {
		return &refError{path: path, failed: re.failed, err: re.err}
	}
	return &refError{path: path, failed: ref, err: err}
}

func (e *refError) Error() string {
	return fmt.Sprintf("uploader: %s not published because %s failed: %v", e.path, e.failed, e.err)
}

func (e *refError) Unwrap() error { return e.err }

// acquire joins the flight of path, starting it with plan p's view when none
// runs. Within one plan a path has one flight, even after it finished, so a
// path is never uploaded twice for one call. The caller must release it. The
// flight runs under its own context, which keeps ctx's values but not its
// cancellation: it is cancelled only when every interested party has
// released it.
func (u *Uploader) acquire(ctx context.Context, p *plan, path string) *flight {
	u.mu.Lock()
	defer u.mu.Unlock()
	urgent := IsUrgent(ctx)
	if f := p.flights[path]; f != nil && (f.finished || f.refs > 0) {
		f.refs++
		if urgent {
			f.urgent.Store(true)
		}
		return f
	}
	if f := u.flights[path]; f != nil {
		f.refs++
		if urgent {
			f.urgent.Store(true)
		}
		p.flights[path] = f
		return f
	}
	if at, ok := u.published[path]; ok && at.After(p.started) {
		// Published by another call after this plan's lookup began, which
		// therefore missed it: nothing to do, and it counts as present.
		done := make(chan struct{})
		close(done)
		f := &flight{path: path, refs: 1, finished: true, done: done, cancel: func() {}}
		p.flights[path] = f
		if u.cfg.Observer != nil {
			u.cfg.Observer.Finished(path, nil)
		}
		return f
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &flight{path: path, owner: p, refs: 1, cancel: cancel, done: make(chan struct{})}
	f.urgent.Store(urgent)
	u.flights[path] = f
	p.flights[path] = f
	go u.run(fctx, f)
	return f
}

// rememberPublished records path in u.published; u.mu must be held.
func (u *Uploader) rememberPublished(path string) {
	if _, ok := u.published[path]; ok {
		u.published[path] = time.Now()
		return
	}
	u.published[path] = time.Now()
	u.publishedFIFO = append(u.publishedFIFO, path)
	if len(u.publishedFIFO) > maxPublished {
		delete(u.published, u.publishedFIFO[0])
		u.publishedFIFO = u.publishedFIFO[1:]
	}
}

// release drops one interest in f; the last one cancels an unfinished flight
// and unlists it, so that later callers start afresh.
func (u *Uploader) release(f *flight) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f.refs--
	if f.refs == 0 && !f.finished {
		if u.flights[f.path] == f {
			delete(u.flights, f.path)
		}
		f.cancel()
	}
}

// subscribe returns a channel that receives each of deps once it has
// finished. It never blocks the finishing flights.
func (u *Uploader) subscribe(deps []*flight) <-chan *flight {
	ch := make(chan *flight, len(deps))
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, d := range deps {
		if d.finished {
			ch <- d
		} else {
			d.waiters = append(d.waiters, ch)
		}
	}
	return ch
}

func (u *Uploader) run(ctx context.Context, f *flight) {
	err := u.publish(ctx, f)
	u.mu.Lock()
	if u.cfg.Observer != nil {
		// Before anyone waiting for f learns that it finished, and under
		// u.mu so that Expedite, which may replay it, sees it together
		// with f.finished.
		u.cfg.Observer.Finished(f.path, err)
	}
	if u.flights[f.path] == f {
		delete(u.flights, f.path)
	}
	if err == nil {
		u.rememberPublished(f.path)
	}
	f.err = err
	f.finished = true
	for _, w := range f.waiters {
		w <- f
	}
	f.waiters = nil
	close(f.done)
	u.mu.Unlock()
	f.cancel()
}

// publish uploads f's path: its NAR (in parallel with whatever its missing
// references are doing) and, with Config.WriteNarListing, its listing; then,
// once every reference's narinfo is known to be in the cache, its narinfo. A failing reference stops it early; it then
// publishes nothing and returns a *refError.
func (u *Uploader) publish(ctx context.Context, f *flight) error {
	p := f.owner
	info := p.infos[f.path]
	log := u.log.With(zap.String("path", f.path))

	var deps []*flight
	for _, r := range info.References {
		if r != info.Path && p.state[r] == stateMissing {
			deps = append(deps, u.acquire(ctx, p, r))
		}
	}
	defer func() {
		for _, d := range deps {
			u.release(d)
		}
	}()
	notify := u.subscribe(deps)
	pending := len(deps)
	var refErr error
	take := func(d *flight) {
		pending--
		if d.err != nil && refErr == nil {
			refErr = newRefError(f.path, d.path, d.err)
		}
	}

	// Wait for a streaming slot (a small one for a small NAR, see
	// smallnar.go), unless a reference fails first. Waiting for references
	// never holds a slot, so flights cannot starve each other.
	small := u.isSmall(info)
	lane := u.slots
	if small {
		lane = u.small
	}
	slot := lane.wait(&f.urgent)
	giveUp := func() { lane.cancel(slot) }
acquireSlot:
	for {
		select {
		case <-slot.ready:
			break acquireSlot
		case d := <-notify:
			if take(d); refErr != nil {
				giveUp()
				return refErr
			}
		case <-ctx.Done():
			giveUp()
			return fmt.Errorf("uploader: %s: %w", f.path, ctx.Err())
		}
	}

	narCtx, stopNAR := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { // stop the stream as soon as a reference fails
		defer close(watched)
		for pending > 0 && refErr == nil {
			select {
			case d := <-notify:
				if take(d); refErr != nil {
					stopNAR()
				}
			case <-narCtx.Done():
				return
			}
		}
	}()
	var nar narResult
	var narErr error
	var narDone time.Time
	if small {
		nar, narErr = u.putSmallNAR(narCtx, info, log)
		narDone = time.Now()
		u.small.release()
	} else {
		// The streaming slot bounds compressors; once the whole NAR is
		// compressed and handed to the cache, the slot goes to the next
		// NAR while this one's last part is still on the wire (a sending
		// slot bounds those buffers instead).
		var once sync.Once
		sending := false
		handedOver := func() {
			once.Do(func() {
				select {
				case u.sending <- struct{}{}:
					sending = true
				case <-narCtx.Done():
				}
				u.slots.release()
			})
		}
		nar, narErr = u.putNAR(narCtx, info, log, handedOver)
		narDone = time.Now()
		handedOver()
		if sending {
			<-u.sending
		}
	}
	stopNAR()
	<-watched
	if refErr != nil {
		return refErr
	}
	if narErr != nil {
		return narErr
	}
	if nar.listing != nil {
		// Before the narinfo, so that clients never see a published path
		// without its listing.
		if err := u.putListing(ctx, p.sps[f.path], info, nar.listing); err != nil {
			return err
		}
		nar.listing = nil // not kept with the finished flight
	}
	f.nar = nar

	for pending > 0 {
		select {
		case d := <-notify:
			if take(d); refErr != nil {
				return refErr
			}
		case <-ctx.Done():
			return fmt.Errorf("uploader: %s: %w", f.path, ctx.Err())
		}
	}
	if err := u.recheck(ctx, f, narDone, nar, log); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, PublishTimeout)
	defer cancel()
	return u.putNarInfo(pctx, p, info, nar, log)
}
