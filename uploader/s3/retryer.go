package s3

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// newRetryer builds the SDK retryer: the standard one (exponential backoff
// with jitter, retrying 5xx, throttling and connection errors) plus 429,
// without the client-side retry quota, because the queue already bounds how
// often a path is retried, and honouring the server's Retry-After. These are
// transport retries within one request; whether a request that still fails
// is retried later is uploader.Classify's decision, on the translated error.
func newRetryer(cfg Config) aws.Retryer {
	std := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = cfg.MaxAttempts
		o.MaxBackoff = cfg.MaxBackoff
		o.Backoff = &jitterBackoff{base: cfg.RetryDelay, throttled: cfg.ThrottleDelay, max: cfg.MaxBackoff, rand: rand.Float64}
		o.RateLimiter = ratelimit.None
		o.Retryables = append(o.Retryables, retry.RetryableHTTPStatusCode{
			Codes: map[int]struct{}{http.StatusTooManyRequests: {}},
		})
	})
	return &retryAfterRetryer{RetryerV2: std, maxWait: cfg.MaxRetryAfter, now: time.Now}
}

// retryAfterRetryer waits as long as the server's Retry-After header asks
// (plus up to a quarter more) before the next attempt, and the standard
// exponential backoff when the server does not say. A Retry-After beyond maxWait ends the
// request with the server's error instead of sleeping inside it, so the
// caller can reschedule the work (the error it returns carries the delay, see translate).
type retryAfterRetryer struct {
	aws.RetryerV2
	maxWait time.Duration
	now     func() time.Time
}

func (r *retryAfterRetryer) RetryDelay(attempt int, opErr error) (time.Duration, error) {
	delay, err := r.RetryerV2.RetryDelay(attempt, opErr)
	if err != nil {
		return delay, err
	}
	asked := retryAfter(opErr, r.now())
	if asked > r.maxWait {
		return 0, opErr
	}
	if asked > 0 {
		// The server said when to come back: its word replaces the
		// exponential backoff, which for a server that throttles a
		// steady fraction of requests would make the unlucky request
		// that is throttled four times in a row wait half a minute.
		// The adaptive request limit (limit.go) is what lowers the
		// load; a quarter of jitter spreads the retries.
		return asked + time.Duration(rand.Int64N(int64(asked)/4+1)), nil
	}
	return delay, nil
}

// jitterBackoff is Nix's file-transfer backoff (2.35): attempt n waits a
// random time between 0 and base × 2^(n-1) ("full jitter"), capped at max,
// with a larger base when the server throttled the request.
type jitterBackoff struct {
	base, throttled, max time.Duration
	rand                 func() float64
}

func (b *jitterBackoff) BackoffDelay(attempt int, err error) (time.Duration, error) {
	base := b.base
	if isThrottle(err) {
		base = b.throttled
	}
	ceiling := b.max
	if attempt >= 1 && attempt < 32 {
		if d := base << (attempt - 1); d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(b.rand() * float64(ceiling)), nil
}

// isThrottle reports a response that asks the client to slow down: 429, 503
// or an S3 throttling error code.
func isThrottle(err error) bool {
	switch httpStatus(err) {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true
	}
	var te interface{ IsErrorThrottle() aws.Ternary }
	if errors.As(err, &te) && te.IsErrorThrottle() == aws.TrueTernary {
		return true
	}
	return retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}
