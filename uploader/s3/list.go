package s3

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nixs3q/nixs3q/uploader"
)

var _ uploader.PendingLister = (*Store)(nil)

// listPageSize is the number of keys asked for per listing request, S3's
// maximum.
const listPageSize = 1000

// List pages through ListObjectsV2, 1,000 keys per request, calling fn for
// each object in ascending key order. Only one page is held at a time.
// Each request is retried by the SDK like every other.
func (s *Store) List(ctx context.Context, prefix string, fn func(uploader.Object) error) error {
	return s.list(ctx, prefix, "", fn)
}

var _ uploader.TopLister = (*Store)(nil)

// ListTop is List without descending below a "/" after prefix (S3's
// delimiter): listing "a" lists "a….narinfo" but nothing under "nar/". It
// takes one request per 1,000 keys, which is what makes it worth using
// instead of one HeadObject per key for a large closure.
func (s *Store) ListTop(ctx context.Context, prefix string, fn func(uploader.Object) error) error {
	return s.list(ctx, prefix, "/", fn)
}

func (s *Store) list(ctx context.Context, prefix, delimiter string, fn func(uploader.Object) error) error {
	if err := uploader.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("s3: list: %w", err)
	}
	in := &awss3.ListObjectsV2Input{
		Bucket:  &s.cfg.Bucket,
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(listPageSize),
	}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	pages := awss3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3: list %q: %w", prefix, translate(err))
		}
		for _, o := range page.Contents {
			obj := uploader.Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size)}
			if o.LastModified != nil {
				obj.LastModified = *o.LastModified
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes key with one DeleteObject. S3 answers a missing key with
// success, and so does Delete.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := uploader.CheckKey(key); err != nil {
		return fmt.Errorf("s3: delete: %w", err)
	}
	if _, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &key}); err != nil {
		return fmt.Errorf("s3: delete %s: %w", key, translate(err))
	}
	return nil
}

// ListPending pages through ListMultipartUploads (1,000 per request) and
// reports every multipart upload that was started and not yet completed
// or aborted, in ascending key order. The prefix is applied here, not sent:
// MinIO answers a listing prefix only when it names one key exactly, and
// lists everything without one.
func (s *Store) ListPending(ctx context.Context, prefix string, fn func(uploader.PendingUpload) error) error {
	if err := uploader.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("s3: list uploads: %w", err)
	}
	in := &awss3.ListMultipartUploadsInput{
		Bucket:     &s.cfg.Bucket,
		MaxUploads: aws.Int32(listPageSize),
	}
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return fmt.Errorf("s3: list uploads %q: %w", prefix, translate(err))
		}
		for _, u := range out.Uploads {
			p := uploader.PendingUpload{Key: aws.ToString(u.Key), ID: aws.ToString(u.UploadId)}
			if !strings.HasPrefix(p.Key, prefix) {
				continue
			}
			if u.Initiated != nil {
				p.Started = *u.Initiated
			}
			if err := fn(p); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		next := aws.ToString(out.NextKeyMarker)
		nextID := aws.ToString(out.NextUploadIdMarker)
		if next == "" && nextID == "" {
			return nil // a truncated page without markers cannot be continued
		}
		in.KeyMarker, in.UploadIdMarker = aws.String(next), aws.String(nextID)
	}
}

// AbortPending aborts the multipart upload p, freeing its parts. An upload
// that no longer exists (NoSuchUpload) is not an error.
func (s *Store) AbortPending(ctx context.Context, p uploader.PendingUpload) error {
	if err := uploader.CheckKey(p.Key); err != nil {
		return fmt.Errorf("s3: abort upload: %w", err)
	}
	if p.ID == "" {
		return fmt.Errorf("s3: abort upload of %s: no upload ID", p.Key)
	}
	_, err := s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket: &s.cfg.Bucket, Key: aws.String(p.Key), UploadId: aws.String(p.ID),
	})
	if err != nil && !isNoSuchUpload(err) {
		return fmt.Errorf("s3: abort upload of %s: %w", p.Key, translate(err))
	}
	return nil
}
