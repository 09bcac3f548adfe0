package s3

import (
	"errors"
	"net/http"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func TestJitterBackoff(t *testing.T) {
	status := func(code int) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}},
			Err:      errors.New("server said no"),
		}}
	}
	b := &jitterBackoff{base: 100 * time.Millisecond, throttled: 5 * time.Second, max: 8 * time.Second}
	for _, tc := range []struct {
		name    string
		attempt int
		err     error
		want    time.Duration // the ceiling, what rand() = 1 gives
	}{
		{"first transient", 1, status(500), 100 * time.Millisecond},
		{"third transient", 3, status(502), 400 * time.Millisecond},
		{"transient capped", 10, status(500), 8 * time.Second},
		{"first 429", 1, status(429), 5 * time.Second},
		{"second 503", 2, status(503), 8 * time.Second},
		{"connection error", 2, errors.New("connection reset"), 200 * time.Millisecond},
		{"huge attempt", 200, status(500), 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.rand = func() float64 { return 1 }
			if got, _ := b.BackoffDelay(tc.attempt, tc.err); got != tc.want {
				t.Errorf("ceiling %v, want %v", got, tc.want)
			}
			b.rand = func() float64 { return 0.25 }
			if got, _ := b.BackoffDelay(tc.attempt, tc.err); got != tc.want/4 {
				t.Errorf("quarter jitter %v, want %v", got, tc.want/4)
			}
		})
	}
}
