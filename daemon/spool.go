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
// valid paths could not be queued stays for the next scan.
func (d *Daemon) ingestSpool(ctx context.Context) {
	dir := hook.SpoolDir(d.cfg.StateDir)
	files, err := hook.ListSpool(dir)
	if err != nil {
		d.log.Warn("cannot read the spool", zap.String("dir", dir), zap.Error(err))
		return
	}
	for _, f := range files {
		if ctx.Err() != nil {
			return
		}
		paths, err := hook.ReadSpool(f)
		if err != nil {
			d.log.Warn("cannot read spool file; leaving it", zap.String("file", f), zap.Error(err))
			continue
		}
		var valid []string
		for _, p := range paths {
			if why := d.validate(p); why != "" {
				d.log.Warn("spooled path skipped", zap.String("path", p), zap.String("reason", why))
				continue
			}
			valid = append(valid, p)
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
