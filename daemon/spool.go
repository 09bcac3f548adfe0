package daemon

import (
	"context"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/hook"
)

// spoolLoop ingests the spool every SpoolInterval until ctx is cancelled.
func (d *Daemon) spoolLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.SpoolInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.ingestSpool(ctx)
		}
	}
}

// ingestSpool queues the paths of every spool file and removes each file
// only after its paths are durably queued. Invalid paths in a spool file are
// logged and skipped (the hook that wrote them has long exited); a file whose
// valid paths could not be queued stays for the next scan. A file that
// cannot be read (too large, a line too long, not a regular file, owned by
// another user) is moved to spool/bad/ at once and logged once: retrying
// would fail the same way. A spool directory that group or others may write
// to is not read at all, and that is logged once.
func (d *Daemon) ingestSpool(ctx context.Context) {
	dir := hook.SpoolDir(d.cfg.StateDir)
	if err := hook.CheckSpoolDir(dir); err != nil {
		if msg := err.Error(); msg != d.spoolProblem {
			d.spoolProblem = msg
			d.log.Error("not reading the spool", zap.Error(err))
		}
		return
	}
	d.spoolProblem = ""
	files, err := hook.ListSpool(dir)
	if err != nil {
		d.log.Warn("cannot read the spool", zap.String("dir", dir), zap.Error(err))
		return
	}
	for _, f := range files {
		if ctx.Err() != nil {
			return
		}
		paths, err := hook.ReadSpool(f, os.Geteuid())
		if err != nil {
			dest, qerr := hook.QuarantineSpool(f)
			if qerr != nil {
				d.log.Error("unreadable spool file could not be moved aside", zap.String("file", f),
					zap.Error(err), zap.NamedError("move_error", qerr))
				continue
			}
			d.log.Error("unreadable spool file moved aside; its paths are not queued",
				zap.String("file", dest), zap.Error(err))
			continue
		}
		var valid []string
		var skipped []string
		for _, p := range paths {
			if why := d.validate(p); why != "" {
				if len(skipped) < 10 {
					skipped = append(skipped, p+": "+why)
				}
				continue
			}
			valid = append(valid, p)
		}
		if n := len(paths) - len(valid); n > 0 {
			d.log.Warn("spooled paths skipped", zap.String("file", f), zap.Int("count", n), zap.Strings("first", skipped))
		}
		if len(valid) > 0 {
			res, err := d.q.Enqueue(ctx, valid)
			if err != nil {
				d.log.Warn("cannot queue spooled paths; will try again", zap.String("file", f), zap.Error(err))
				continue
			}
			d.log.Info("ingested spool file", zap.String("file", f), zap.Int("paths", len(valid)), zap.Int("added", res.Added))
		}
		if err := os.Remove(f); err != nil {
			d.log.Warn("cannot remove ingested spool file", zap.String("file", f), zap.Error(err))
		}
	}
}
