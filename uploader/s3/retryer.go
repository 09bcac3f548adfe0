package s3

import (
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
		o.RateLimiter = ratelimit.None
		o.Retryables = append(o.Retryables, retry.RetryableHTTPStatusCode{
			Codes: map[int]struct{}{http.StatusTooManyRequests: {}},
		})
	})
	return &retryAfterRetryer{RetryerV2: std, maxWait: cfg.MaxRetryAfter, now: time.Now}
}

// retryAfterRetryer waits at least as long as the server's Retry-After
// header asks before the next attempt. A Retry-After beyond maxWait ends the
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
	return max(delay, asked), nil
}
