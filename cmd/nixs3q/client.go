package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/progress"
)

func defaultSocket() string {
	if s := os.Getenv(hook.SocketEnv); s != "" {
		return s
	}
	return hook.DefaultSocket
}

func newFlags(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("nixs3q "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: nixs3q %s %s\n\nFlags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// withClient dials the daemon, runs fn with the connection and closes it.
// An error is worded for the user: the daemon's refusal as it said it (with
// each refused path and its reason, exit status 2), or that the daemon
// cannot be reached.
func withClient(ctx context.Context, socket string, fn func(*hook.Client) error) error {
	c, err := hook.Dial(ctx, socket)
	if err == nil {
		err = fn(c)
		c.Close()
	}
	var refused *hook.RefusedError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hook.ErrUnavailable):
		return fmt.Errorf("cannot reach the nixs3q daemon at %s (is it running? see 'systemctl status nixs3q'): %w", socket, err)
	case errors.As(err, &refused):
		var b strings.Builder
		b.WriteString(refused.Error())
		for _, r := range refused.Refused {
			fmt.Fprintf(&b, "\n  %s: %s", r.Path, r.Reason)
		}
		if more := refused.Invalid() - len(refused.Refused); more > 0 {
			fmt.Fprintf(&b, "\n  ... and %d more", more)
		}
		// Paths that are not in the store are bad arguments: status 2, as
		// for wait and copy.
		return &exitError{2, errors.New(b.String())}
	}
	return err
}

// resolvePath turns what a user typed (./result, a relative path) into the
// store path it points at: symbolic links are followed one at a time, and
// only until the path sits directly in storeDir, so a store path that is
// itself a link to another store path is pushed as itself, not silently as
// the other one. Anything that does not resolve is passed on as far as it
// got, for the daemon to refuse with its reason.
func resolvePath(p, storeDir string) string {
	if drv, ok := hook.BuildDrv(p); ok {
		return hook.BuildItem(resolvePath(drv, storeDir))
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	realStore, err := filepath.EvalSymlinks(storeDir)
	if err != nil {
		realStore = storeDir
	}
	for range 40 {
		dir := filepath.Dir(abs)
		if dir == storeDir {
			return abs
		}
		// Links among the parents (a symlinked store directory, say).
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			if real == storeDir || real == realStore {
				return filepath.Join(storeDir, filepath.Base(abs))
			}
			abs = filepath.Join(real, filepath.Base(abs))
		}
		fi, err := os.Lstat(abs)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return abs
		}
		target, err := os.Readlink(abs)
		if err != nil {
			return abs
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(abs), target)
		}
		abs = filepath.Clean(target)
	}
	return abs
}

// cliStoreDir is the store directory push and retry resolve paths into:
// NIX_STORE_DIR when set, as Nix itself reads it, else /nix/store.
func cliStoreDir() string {
	if d := os.Getenv("NIX_STORE_DIR"); d != "" {
		return filepath.Clean(d)
	}
	return nix.DefaultStoreDir
}

func runPush(ctx context.Context, args []string) error {
	fs := newFlags("push", "[--socket PATH] [--wait [--timeout D]] PATH... (a path, or DRV^* for a build's realisations and log)")
	socket := fs.String("socket", defaultSocket(), "daemon socket (env NIXS3Q_SOCKET)")
	wait := fs.Bool("wait", false, "then wait until the closures of these paths are in the cache (as 'nixs3q wait PATH...')")
	timeout := fs.Duration("timeout", 0, "with --wait: give up after this long (0: wait forever)")
	var pf progressFlags
	pf.register(fs)
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return &exitError{2, errSilent}
	}
	if *timeout < 0 {
		return &exitError{2, errors.New("--timeout must be positive (or 0: wait forever)")}
	}
	var disp *progress.Display
	var live bool
	if *wait {
		var err error
		if disp, live, err = pf.display("nixs3q push: "); err != nil {
			return &exitError{2, err}
		}
	}
	var paths []string
	for _, p := range fs.Args() {
		paths = append(paths, resolvePath(p, cliStoreDir()))
	}
	var res hook.EnqueueResult
	err := func() error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return withClient(ctx, *socket, func(c *hook.Client) (err error) {
			res, err = c.Enqueue(ctx, hook.EnqueueRequest{Paths: paths, Source: "push"})
			return err
		})
	}()
	if err != nil {
		return err
	}
	fmt.Printf("queued %d path(s): %d new, %d already queued, %d failed before and retried\n",
		len(paths), res.Added, res.AlreadyQueued, res.Requeued)
	if !*wait {
		return nil
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	return waitPaths(ctx, *socket, paths, *timeout, disp, live)
}

func runRetry(ctx context.Context, args []string) error {
	fs := newFlags("retry", "[--socket PATH] [PATH...]")
	socket := fs.String("socket", defaultSocket(), "daemon socket (env NIXS3Q_SOCKET)")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	var paths []string
	for _, p := range fs.Args() {
		paths = append(paths, resolvePath(p, cliStoreDir()))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var res hook.RetryResult
	err := withClient(ctx, *socket, func(c *hook.Client) (err error) {
		res, err = c.Retry(ctx, paths)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("moved %d failed path(s) back to pending\n", res.Retried)
	return nil
}

func fetchStatus(ctx context.Context, socket string) (*hook.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st *hook.Status
	err := withClient(ctx, socket, func(c *hook.Client) (err error) {
		st, err = c.Status(ctx)
		return err
	})
	return st, err
}

func runStatus(ctx context.Context, args []string) error {
	fs := newFlags("status", "[--socket PATH] [--json] [--watch [--interval D]]")
	socket := fs.String("socket", defaultSocket(), "daemon socket (env NIXS3Q_SOCKET)")
	asJSON := fs.Bool("json", false, "print machine-readable JSON")
	watch := fs.Bool("watch", false, "refresh the view in place until interrupted")
	interval := fs.Duration("interval", 2*time.Second, "with --watch: time between refreshes")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if *watch {
		if *asJSON {
			return &exitError{2, errors.New("--watch and --json do not go together")}
		}
		if *interval <= 0 {
			return &exitError{2, errors.New("--interval must be positive")}
		}
		return watchStatus(ctx, *socket, *interval)
	}
	st, err := fetchStatus(ctx, *socket)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(os.Stdout, st)
	return nil
}

// watchStatus redraws the status view every interval until ctx is done
// (Ctrl-C), which ends it with status 0. On a terminal the view is
// replaced in place; elsewhere each view is printed after the last. A
// daemon that cannot be reached is reported in the view, and asked again.
func watchStatus(ctx context.Context, socket string, interval time.Duration) error {
	term, size := progress.Terminal(os.Stdout)
	fetch := func(ctx context.Context) (*hook.Status, error) { return fetchStatus(ctx, socket) }
	watchLoop(ctx, progress.NewBlock(os.Stdout, term, size), fetch, interval, time.Now)
	return nil
}

// watchLoop draws fetch's status into b every interval until ctx is done.
func watchLoop(ctx context.Context, b *progress.Block, fetch func(context.Context) (*hook.Status, error), interval time.Duration, now func() time.Time) {
	for {
		var view strings.Builder
		fmt.Fprintf(&view, "nixs3q status, every %s: %s\n", interval, now().Format("15:04:05"))
		st, err := fetch(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			fmt.Fprintf(&view, "%v\n", err)
		default:
			printStatus(&view, st)
		}
		b.Draw(view.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func printStatus(w io.Writer, st *hook.Status) {
	fmt.Fprintf(w, "cache:      %s\n", st.Store)
	q := fmt.Sprintf("%d pending, %d in flight, %d failed", st.Pending, st.InFlight, st.Failed)
	if st.Spooled > 0 && st.SpoolProblem == "" {
		q += fmt.Sprintf(", %d spool file(s) not yet read", st.Spooled)
	}
	if st.SpoolBad > 0 {
		q += fmt.Sprintf(", %d unreadable spool file(s) in spool/bad (not queued; see the daemon's log)", st.SpoolBad)
	}
	if st.OldestPendingSeconds > 0 {
		q += fmt.Sprintf(" (oldest waiting %s)", (time.Duration(st.OldestPendingSeconds) * time.Second).String())
	}
	fmt.Fprintf(w, "queue:      %s\n", q)
	if st.SpoolProblem != "" {
		fmt.Fprintf(w, "spool:      %d file(s) %s\n", st.Spooled, st.SpoolProblem)
	}
	fmt.Fprintf(w, "uploaded:   %d paths, %s; %d already in the cache; %d dropped (gone before upload)\n",
		st.Uploaded, humanBytes(st.UploadedBytes), st.Skipped, st.Dropped)
	if st.Excluded+st.HeldBack > 0 {
		fmt.Fprintf(w, "filtered:   %d queued paths excluded by --exclude/--max-nar-size; %d held back (they refer to an excluded path)\n",
			st.Excluded, st.HeldBack)
	}
	if st.Realisations+st.Logs > 0 {
		fmt.Fprintf(w, "builds:     %d realisations, %d build logs published\n", st.Realisations, st.Logs)
	}
	fmt.Fprintf(w, "throughput: %s/s (last 30s)\n", humanBytes(int64(st.ThroughputBytesSec)))
	if g := st.LastGC; g != nil {
		line := fmt.Sprintf("%s, took %s: deleted %d objects (%s), kept %d (%s)",
			g.Finished.Local().Format(time.DateTime), (time.Duration(g.Seconds) * time.Second).String(),
			g.DeletedObjects, humanBytes(g.DeletedBytes), g.KeptObjects, humanBytes(g.KeptBytes))
		if g.Error != "" {
			line += "; stopped early: " + g.Error
		}
		fmt.Fprintf(w, "last gc:    %s\n", line)
	}
	if len(st.Uploading) > 0 {
		fmt.Fprintln(w, "uploading now:")
		sort.Slice(st.Uploading, func(i, j int) bool { return st.Uploading[i].Path < st.Uploading[j].Path })
		for _, t := range st.Uploading {
			pct := 100.0
			if t.NarSize > 0 {
				pct = 100 * float64(t.Read) / float64(t.NarSize)
			}
			fmt.Fprintf(w, "  %s  %.0f%% of %s\n", t.Path, pct, humanBytes(int64(t.NarSize)))
		}
	}
	if len(st.Active) > 0 {
		fmt.Fprintln(w, "in flight:")
		for _, a := range st.Active {
			fmt.Fprintf(w, "  %s  (attempt %d, for %s)\n", a.Path, a.Attempts+1, time.Since(a.Since).Round(time.Second))
		}
	}
	var filtered []hook.HistoryEntry
	for _, h := range st.Recent {
		if h.Result == "filtered" {
			filtered = append(filtered, h)
		}
	}
	if len(filtered) > 0 {
		fmt.Fprintln(w, "recently kept out by the filters:")
		for _, h := range filtered {
			fmt.Fprintf(w, "  %s  %s\n", h.Path, h.Detail)
		}
	}
	if len(st.Failures) > 0 {
		fmt.Fprintln(w, "failed (run 'nixs3q retry' to try again):")
		for _, f := range st.Failures {
			fmt.Fprintf(w, "  %s  after %d attempt(s): %s\n", f.Path, f.Attempts, f.LastError)
		}
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
