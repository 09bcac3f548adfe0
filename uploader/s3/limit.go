package s3

import (
	"context"
	"errors"
	"net/http"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/nixs3q/nixs3q/internal/aimd"
	"github.com/nixs3q/nixs3q/uploader"
)

// Observer receives one call per request attempt (every retry is an
// attempt), after its answer: the S3 operation ("HeadObject",
// "UploadPart", ...), how long the attempt took from the moment it had a
// slot until its answer was read, and its result: "ok" (including a 404
// answer to HeadObject), "throttled" or "error". It must not block.
type Observer interface {
	ObserveRequest(op string, took time.Duration, result string)
}

// readOps are the operations that share the read limit; every other
// operation shares the write limit. S3 rates GETs and PUTs separately
// (5,500 GET/HEAD and 3,500 PUT/POST/DELETE per second per prefix), and
// keeping them apart means lookups never queue behind NAR parts.
var readOps = map[string]bool{
	"HeadObject":           true,
	"GetObject":            true,
	"ListObjectsV2":        true,
	"ListMultipartUploads": true,
}

// Limits are the adaptive request limits of a Store.
type Limits struct {
	Read, Write aimd.Stats
}

// Limits returns the current request limits.
func (s *Store) Limits() Limits {
	return Limits{Read: s.reads.Stats(), Write: s.writes.Stats()}
}

// newLimiters builds the read and write limits of cfg (defaults applied).
func newLimiters(cfg Config) (reads, writes *aimd.Limiter, err error) {
	reads, err = aimd.New(aimd.Config{Initial: min(DefaultInitialRequests, cfg.MaxReadRequests), Max: cfg.MaxReadRequests})
	if err != nil {
		return nil, nil, err
	}
	writes, err = aimd.New(aimd.Config{Initial: min(DefaultInitialRequests, cfg.MaxWriteRequests), Max: cfg.MaxWriteRequests})
	return reads, writes, err
}

// addLimit inserts the per-attempt limit into an operation's stack, right
// after the retry loop, so that every attempt holds a slot while it is on
// the wire and a retry waiting out its backoff holds none.
func (s *Store) addLimit(stack *middleware.Stack) error {
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("nixs3qRequestLimit", s.limitAttempt), "Retry", middleware.After)
}

func (s *Store) limitAttempt(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	op := awsmiddleware.GetOperationName(ctx)
	lim := s.writes
	if readOps[op] {
		lim = s.reads
	}
	slot, err := lim.Acquire(ctx)
	if err != nil {
		return middleware.FinalizeOutput{}, middleware.Metadata{}, err
	}
	start := time.Now()
	out, md, err := next.HandleFinalize(ctx, in)
	took := time.Since(start)
	outcome, result := attemptOutcome(err)
	lim.Release(slot, outcome)
	if s.cfg.Observer != nil {
		s.cfg.Observer.ObserveRequest(op, took, result)
	}
	return out, md, err
}

// attemptOutcome judges one attempt for the limit and the metrics. Any
// answer from the server that is not throttling counts as a success for the
// limit: the server had the capacity to answer.
func attemptOutcome(err error) (aimd.Outcome, string) {
	switch {
	case err == nil:
		return aimd.Success, "ok"
	case isThrottled(err):
		return aimd.Throttled, "throttled"
	}
	switch status := httpStatus(err); {
	case status == http.StatusNotFound:
		return aimd.Success, "ok"
	case status != 0:
		return aimd.Success, "error"
	}
	return aimd.Ignored, "error"
}

// isThrottled reports an answer asking for fewer requests, as the
// backend's error translation names it (S3's throttling codes, HTTP 429 or
// 503).
func isThrottled(err error) bool {
	return errors.Is(translate(err), uploader.ErrThrottled)
}
