package s3

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// LifecycleRule is the part of a bucket lifecycle rule that matters to a
// Nix cache.
type LifecycleRule struct {
	ID      string
	Enabled bool
	// Prefix is the rule's key prefix filter ("" for the whole bucket, or
	// when the filter is on tags or sizes only).
	Prefix string
	// ExpirationDays and ExpirationDate delete current objects by age or at
	// a date; zero when the rule has no such expiration.
	ExpirationDays int
	ExpirationDate time.Time
	// AbortIncompleteDays aborts multipart uploads this many days after
	// they began; 0 when the rule does not.
	AbortIncompleteDays int
	// NoncurrentDays deletes noncurrent versions this many days after they
	// became noncurrent; 0 when the rule does not.
	NoncurrentDays int
}

// Lifecycle returns the bucket's lifecycle rules; none is (nil, nil).
func (a *Admin) Lifecycle(ctx context.Context) ([]LifecycleRule, error) {
	out, err := a.s.client.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: &a.s.cfg.Bucket})
	if err != nil {
		if errorCode(err) == "NoSuchLifecycleConfiguration" {
			return nil, nil
		}
		return nil, fmt.Errorf("s3: lifecycle rules of %s: %w", a.s.cfg.Bucket, translate(err))
	}
	rules := make([]LifecycleRule, 0, len(out.Rules))
	for _, r := range out.Rules {
		rule := LifecycleRule{ID: aws.ToString(r.ID), Enabled: r.Status == types.ExpirationStatusEnabled}
		if r.Filter != nil {
			rule.Prefix = aws.ToString(r.Filter.Prefix)
			if r.Filter.And != nil && rule.Prefix == "" {
				rule.Prefix = aws.ToString(r.Filter.And.Prefix)
			}
		}
		if rule.Prefix == "" {
			rule.Prefix = aws.ToString(r.Prefix) //nolint:staticcheck // the legacy field some servers still send
		}
		if e := r.Expiration; e != nil {
			rule.ExpirationDays = int(aws.ToInt32(e.Days))
			rule.ExpirationDate = aws.ToTime(e.Date)
		}
		if ab := r.AbortIncompleteMultipartUpload; ab != nil {
			rule.AbortIncompleteDays = int(aws.ToInt32(ab.DaysAfterInitiation))
		}
		if nc := r.NoncurrentVersionExpiration; nc != nil {
			rule.NoncurrentDays = int(aws.ToInt32(nc.NoncurrentDays))
		}
		rules = append(rules, rule)
	}
	return rules, nil
}

// AbortRuleID names the lifecycle rule EnsureAbortIncompleteRule adds.
const AbortRuleID = "nixs3q-abort-incomplete-multipart"

// EnsureAbortIncompleteRule makes sure an enabled rule of the bucket's
// lifecycle configuration aborts every incomplete multipart upload, so
// that the parts of uploads interrupted by a crash stop costing storage.
// When none does, it adds one for the whole bucket, named AbortRuleID,
// aborting uploads days after they began, and keeps every existing rule
// as it is. It reports whether it changed the configuration. Servers
// without lifecycle rules give an error wrapping uploader.ErrNotSupported.
func (a *Admin) EnsureAbortIncompleteRule(ctx context.Context, days int) (bool, error) {
	if days <= 0 {
		return false, fmt.Errorf("s3: abort incomplete uploads after %d days: want a positive number", days)
	}
	var rules []types.LifecycleRule
	var minSize types.TransitionDefaultMinimumObjectSize
	out, err := a.s.client.GetBucketLifecycleConfiguration(ctx, &awss3.GetBucketLifecycleConfigurationInput{Bucket: &a.s.cfg.Bucket})
	switch {
	case err == nil:
		rules, minSize = out.Rules, out.TransitionDefaultMinimumObjectSize
	case errorCode(err) != "NoSuchLifecycleConfiguration":
		return false, fmt.Errorf("s3: lifecycle rules of %s: %w", a.s.cfg.Bucket, translate(err))
	}
	for _, r := range rules {
		if r.Status == types.ExpirationStatusEnabled && r.AbortIncompleteMultipartUpload != nil &&
			aws.ToInt32(r.AbortIncompleteMultipartUpload.DaysAfterInitiation) > 0 && wholeBucket(r) {
			return false, nil
		}
	}
	rules = append(rules, types.LifecycleRule{
		ID:     aws.String(AbortRuleID),
		Status: types.ExpirationStatusEnabled,
		Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")},
		AbortIncompleteMultipartUpload: &types.AbortIncompleteMultipartUpload{
			DaysAfterInitiation: aws.Int32(int32(days)),
		},
	})
	_, err = a.s.client.PutBucketLifecycleConfiguration(ctx, &awss3.PutBucketLifecycleConfigurationInput{
		Bucket:                             &a.s.cfg.Bucket,
		LifecycleConfiguration:             &types.BucketLifecycleConfiguration{Rules: rules},
		TransitionDefaultMinimumObjectSize: minSize,
	})
	if err != nil {
		return false, fmt.Errorf("s3: put lifecycle rules of %s: %w", a.s.cfg.Bucket, translate(err))
	}
	return true, nil
}

// wholeBucket reports whether a rule applies to every key: no prefix, tag
// or size filter.
func wholeBucket(r types.LifecycleRule) bool {
	if aws.ToString(r.Prefix) != "" { //nolint:staticcheck // the legacy field some servers still send
		return false
	}
	f := r.Filter
	return f == nil || (aws.ToString(f.Prefix) == "" && f.And == nil && f.Tag == nil &&
		f.ObjectSizeGreaterThan == nil && f.ObjectSizeLessThan == nil)
}
