package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/progress"
)

// progressFlags are the display flags of wait, push --wait and copy.
type progressFlags struct {
	mode     string
	interval time.Duration
}

func (p *progressFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.mode, "progress", "auto", "auto (a live line on a terminal, plain lines otherwise), plain, or none")
	fs.DurationVar(&p.interval, "progress-interval", progress.DefaultInterval, "time between two plain progress lines")
}

// display returns the progress display the flags ask for on stderr, nil
// for none, and whether it is a live terminal line.
func (p *progressFlags) display(prefix string) (*progress.Display, bool, error) {
	if p.interval <= 0 {
		return nil, false, errors.New("--progress-interval must be positive")
	}
	switch p.mode {
	case "auto", "plain":
		term, size := progress.Terminal(os.Stderr)
		term = term && p.mode == "auto"
		return progress.New(progress.Config{Out: os.Stderr, Terminal: term, Size: size, Interval: p.interval, Prefix: prefix}), term, nil
	case "none":
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("--progress must be auto, plain or none, got %q", p.mode)
}

func runWait(ctx context.Context, args []string) error {
	fs := newFlags("wait", "[--socket PATH] [--timeout D] [PATH...]")
	socket := fs.String("socket", defaultSocket(), "daemon socket (env NIXS3Q_SOCKET)")
	timeout := fs.Duration("timeout", 0, "give up after this long (0: wait forever)")
	interval := fs.Duration("interval", 200*time.Millisecond, "without paths: how often to ask the daemon")
	var pf progressFlags
	pf.register(fs)
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if *interval <= 0 {
		return &exitError{2, errors.New("--interval must be positive")}
	}
	if *timeout < 0 {
		return &exitError{2, errors.New("--timeout must be positive (or 0: wait forever)")}
	}
	disp, live, err := pf.display("nixs3q wait: ")
	if err != nil {
		return &exitError{2, err}
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	if fs.NArg() == 0 {
		return waitDrained(ctx, *socket, *timeout, *interval, disp)
	}
	var paths []string
	for _, p := range fs.Args() {
		paths = append(paths, resolvePath(p, cliStoreDir()))
	}
	return waitPaths(ctx, *socket, paths, *timeout, disp, live)
}

// waitHold is how long each long poll may be held: short enough to refresh
// a live line every second, and a plain line every few seconds.
func waitHold(live bool) time.Duration {
	if live {
		return time.Second
	}
	return 2 * time.Second
}

// waitPaths long-polls the daemon until the closures of paths are finished,
// feeding disp, and exits as documented: 0 when all are published, 1 when
// any failed (each printed with its reason), 2 on timeout. A daemon that
// goes away is asked again every second until the timeout: a restart loses
// nothing, and the paths are still queued.
func waitPaths(ctx context.Context, socket string, paths []string, timeout time.Duration, disp *progress.Display, live bool) error {
	var since uint64
	var last *hook.WaitState
	var lastErr error
	hold := waitHold(live)
	for {
		if ctx.Err() != nil {
			return waitTimedOut(ctx, timeout, paths, last, disp)
		}
		// One connection per poll: a connection's deadline is fixed when
		// it is dialled, and each poll needs a deadline of its own.
		var st *hook.WaitState
		err := func() error {
			rctx, cancel := context.WithTimeout(ctx, hold+20*time.Second)
			defer cancel()
			c, err := hook.Dial(rctx, socket)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err = c.Wait(rctx, hook.WaitRequest{Paths: paths, Hold: hold, Since: since})
			return err
		}()
		if err != nil {
			if ctx.Err() != nil {
				return waitTimedOut(ctx, timeout, paths, last, disp)
			}
			var refused *hook.RefusedError
			if errors.As(err, &refused) {
				var b strings.Builder
				fmt.Fprintf(&b, "%d of %d path(s) cannot be waited for:", refused.Invalid(), refused.Total)
				for _, r := range refused.Refused {
					fmt.Fprintf(&b, "\n  %s: %s", r.Path, r.Reason)
				}
				if more := refused.Invalid() - len(refused.Refused); more > 0 {
					fmt.Fprintf(&b, "\n  ... and %d more", more)
				}
				return &exitError{2, errors.New(b.String())}
			}
			if errors.Is(err, hook.ErrTooLarge) {
				return &exitError{2, fmt.Errorf("a request naming %d paths is too large (%w): wait for fewer paths at a time "+
					"(a user who may not push is held to %d-byte requests)", len(paths), err, hook.ReadOnlyLineLimit)}
			}
			if errors.Is(err, hook.ErrMalformed) && strings.Contains(err.Error(), "unknown op") {
				return fmt.Errorf("the daemon at %s is too old to wait for paths (restart it with this version, or run 'nixs3q wait' without paths): %w", socket, err)
			}
			if !errors.Is(err, hook.ErrUnavailable) && !errors.Is(err, hook.ErrBusy) {
				return err
			}
			if lastErr == nil {
				say(disp, fmt.Sprintf("nixs3q wait: cannot reach the daemon at %s (%v); asking again every second", socket, err))
			}
			lastErr = err
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if lastErr != nil {
			say(disp, "nixs3q wait: the daemon answers again")
			lastErr = nil
		}
		since, last = st.Version, st
		if disp != nil {
			disp.Update(waitSnapshot(st))
		}
		if st.Done {
			return waitFinished(st, disp)
		}
	}
}

// waitSnapshot turns a wait answer into what the display shows.
func waitSnapshot(st *hook.WaitState) progress.Snapshot {
	pr := st.Progress
	s := progress.Snapshot{PathsTotal: pr.PathsTotal, Uploaded: pr.Uploaded, Present: pr.Present, Failed: pr.Failed,
		BytesTotal: pr.BytesTotal, BytesDone: pr.BytesDone}
	if t := pr.Largest; t != nil {
		s.Largest = progress.Transfer{Path: t.Path, Size: int64(t.NarSize), Done: t.Read}
	}
	var queued, spooled int
	var retry string
	for _, p := range st.Paths {
		switch p.State {
		case hook.WaitPending:
			queued++
			if p.Attempts > 0 && retry == "" {
				retry = fmt.Sprintf("retrying after %d failed attempt(s): %s", p.Attempts, p.Reason)
			}
		case hook.WaitSpooled:
			spooled++
		}
	}
	var notes []string
	if queued > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d waiting in the queue", queued, len(st.Paths)))
	}
	if spooled > 0 {
		notes = append(notes, fmt.Sprintf("%d not read from the spool yet", spooled))
	}
	if retry != "" {
		notes = append(notes, retry)
	}
	s.Note = strings.Join(notes, ", ")
	return s
}

// waitFinished prints the summary and every path that did not make it to
// the cache, and returns the exit status.
func waitFinished(st *hook.WaitState, disp *progress.Display) error {
	if disp != nil {
		disp.Finish(waitSnapshot(st))
	}
	failed := 0
	for _, p := range st.Paths {
		if p.State != hook.WaitPublished {
			failed++
			fmt.Fprintf(os.Stderr, "%s: %s: %s\n", p.State, p.Path, p.Reason)
		}
	}
	if failed > 0 {
		return &exitError{1, fmt.Errorf("%d of %d path(s) not published", failed, len(st.Paths))}
	}
	return nil
}

func waitTimedOut(ctx context.Context, timeout time.Duration, paths []string, last *hook.WaitState, disp *progress.Display) error {
	if disp != nil && last != nil {
		disp.Finish(waitSnapshot(last))
	}
	var open []string
	if last != nil {
		for _, p := range last.Paths {
			if !p.Finished() {
				open = append(open, fmt.Sprintf("\n  %s: %s", p.Path, p.State))
			}
		}
	} else {
		for _, p := range paths {
			open = append(open, "\n  "+p)
		}
	}
	why := "interrupted"
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		why = "timed out after " + timeout.String()
	}
	return &exitError{2, fmt.Errorf("%s; not finished:%s", why, strings.Join(open, ""))}
}

func say(disp *progress.Display, msg string) {
	if disp != nil {
		disp.Println(msg)
		return
	}
	fmt.Fprintln(os.Stderr, msg)
}

// waitDrained waits until nothing is pending, in flight or spooled: the
// meaning of wait without paths.
func waitDrained(ctx context.Context, socket string, timeout, interval time.Duration, disp *progress.Display) error {
	var base int64 = -1
	for {
		st, err := fetchStatus(ctx, socket)
		if err != nil {
			if ctx.Err() != nil {
				return &exitError{2, fmt.Errorf("timed out after %s", timeout)}
			}
			return err
		}
		if base < 0 {
			base = st.Completed + st.Dropped
		}
		snap := drainSnapshot(st, base)
		if disp != nil {
			disp.Update(snap)
		}
		// Spooled paths count as queued: a hook may have spooled while the
		// daemon was restarting, and they are read within a second; but
		// not when the daemon refuses to read the spool at all.
		if st.Pending == 0 && st.InFlight == 0 && (st.Spooled == 0 || st.SpoolProblem != "") {
			if disp != nil {
				disp.Finish(snap)
			}
			if st.Spooled > 0 {
				printStatus(os.Stderr, st)
				return &exitError{1, fmt.Errorf("queue drained, but %d spool file(s) are %s", st.Spooled, st.SpoolProblem)}
			}
			if st.Failed > 0 || st.SpoolBad > 0 {
				printStatus(os.Stderr, st)
				return &exitError{1, fmt.Errorf("queue drained, but %d path(s) failed and %d spool file(s) were unreadable", st.Failed, st.SpoolBad)}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return &exitError{2, fmt.Errorf("timed out after %s: %d pending, %d in flight, %d failed, %d spool file(s)",
				timeout, st.Pending, st.InFlight, st.Failed, st.Spooled)}
		case <-time.After(interval):
		}
	}
}

// drainSnapshot shows a whole-queue wait: queue items finished since the
// wait began, of those plus the ones left.
func drainSnapshot(st *hook.Status, base int64) progress.Snapshot {
	done := int(st.Completed + st.Dropped - base)
	s := progress.Snapshot{PathsTotal: done + st.Pending + st.InFlight, Uploaded: done, Failed: st.Failed,
		Note: fmt.Sprintf("queue: %d pending, %d in flight", st.Pending, st.InFlight)}
	for _, t := range st.Uploading {
		if int64(t.NarSize) > s.Largest.Size {
			s.Largest = progress.Transfer{Path: t.Path, Size: int64(t.NarSize), Done: t.Read}
		}
	}
	return s
}
