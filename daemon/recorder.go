package daemon

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/metrics"
	"github.com/nixs3q/nixs3q/progress"
	"github.com/nixs3q/nixs3q/queue"
	"github.com/nixs3q/nixs3q/uploader"
)

// outcome is how one queue item's upload ended.
type outcome struct {
	item  queue.Item
	res   uploader.Result
	build *uploader.BuildResult // for a build item (hook.BuildItem)
	err   error
	took  time.Duration
}

// outcomeQueue is what the recorder needs from the queue.
type outcomeQueue interface {
	Complete(path string, o queue.Outcome) error
	Fail(path, msg string, opts queue.FailOptions) (queue.Item, error)
	Release(paths []string) error
}

// recorder is the one place outcomes are recorded: in the queue, the
// metrics, the throughput meter and the cache's health. It is safe for
// concurrent use.
type recorder struct {
	q       outcomeQueue
	metrics *metrics.Metrics // may be nil
	meter   *rateMeter
	health  *cacheHealth
	waiters *waiters          // told of every recorded outcome
	tracker *progress.Tracker // may be nil; forgets each recorded root
	log     *zap.Logger
}

// record stores the outcome of one item. workCtx is the context the upload
// ran with: when it is cancelled (shutdown), an unfinished item goes back to
// pending without using an attempt. Failing to record is logged; the item
// then stays leased and the queue returns it to pending on the next start.
func (r *recorder) record(workCtx context.Context, o outcome) {
	it, res, err := o.item, o.res, o.err
	log := r.log.With(zap.String("path", it.Path), zap.Int("attempt", it.Attempts+1))
	r.meter.add(res.Bytes)
	switch {
	case err == nil:
		// The filter counters count queue items, each once: a closure
		// member excluded again by every root that holds it would
		// otherwise be counted again and again. The members are in the
		// log line.
		out := queue.Outcome{Uploaded: res.Uploaded, Skipped: res.Skipped, Bytes: res.Bytes, NarBytes: res.NarBytes, HeldBy: res.HeldBy}
		switch {
		case res.HeldBy == it.Path:
			out.Excluded = 1
		case res.HeldBy != "":
			out.HeldBack = 1
		}
		fields := []zap.Field{zap.Int("uploaded", res.Uploaded), zap.Int("skipped", res.Skipped),
			zap.Int64("bytes", res.Bytes), zap.Duration("took", o.took)}
		if res.Excluded+res.HeldBack > 0 {
			fields = append(fields, zap.Int("excluded", res.Excluded), zap.Int("held_back", res.HeldBack))
		}
		if b := o.build; b != nil {
			out.Realisations = b.Realisations
			if b.Log == uploader.LogUploaded {
				out.Logs = 1
			}
			out.Detail = "log " + b.Log
			fields = append(fields, zap.Int("realisations", b.Realisations), zap.String("log", b.Log), zap.Int64("log_bytes", b.LogBytes))
		}
		switch {
		case res.HeldBy == it.Path:
			out.Detail = "excluded by a filter: not published"
			log.Warn("not published: excluded by a filter", fields...)
		case res.HeldBy != "":
			out.Detail = "held back by " + res.HeldBy + ", which a filter excludes: not published"
			log.Warn("not published: refers to a path a filter excludes", append(fields, zap.String("held_back_by", res.HeldBy))...)
		case o.build != nil:
			log.Info("published build", fields...)
		default:
			log.Info("uploaded", fields...)
		}
		err = r.q.Complete(it.Path, out)
		r.metrics.Uploaded(o.took, it.EnqueuedAt, res.NarBytes, res.Uploaded+res.Skipped)
		r.health.succeeded()
	case errors.Is(err, uploader.ErrPathGone):
		log.Warn("dropped: path vanished before upload", zap.Error(err))
		err = r.q.Complete(it.Path, queue.Outcome{Dropped: true, Detail: err.Error()})
	case workCtx.Err() != nil:
		log.Info("interrupted by shutdown; left queued")
		err = r.q.Release([]string{it.Path})
	default:
		c := uploader.Classify(err)
		msg := err.Error()
		if c.Reason != "" {
			msg = c.Reason + ": " + msg
		}
		var item queue.Item
		item, err = r.q.Fail(it.Path, msg, queue.FailOptions{Permanent: c.Permanent, RetryAfter: c.RetryAfter})
		if err == nil {
			r.metrics.Failed(c.Code, item.State == queue.Failed)
			if item.State == queue.Failed && !c.Permanent {
				r.health.failedTransiently()
			}
			if item.State == queue.Failed {
				log.Error("upload failed; moved to the failed list", zap.String("error", msg), zap.Int("attempts", item.Attempts))
			} else {
				log.Warn("upload failed; will retry", zap.String("error", msg), zap.Time("next_attempt", item.NextAttempt))
			}
		}
	}
	if err != nil {
		log.Error("recording the outcome failed", zap.Error(err))
	}
	if r.tracker != nil {
		r.tracker.Forget(it.Path)
	}
	if r.waiters != nil {
		r.waiters.changed(it.Path)
	}
}
