package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/uploader"
)

// abortTimeout bounds the clean-up of a failed multipart upload, which runs
// even when the caller's context is already cancelled.
const abortTimeout = 30 * time.Second

// Put stores body at key, reading it to EOF, and blocks until the object is
// committed or the attempt has failed. The object becomes visible whole or
// not at all:
//
//   - a body no larger than one part is read into a (pooled) part buffer
//     before the single PutObject is sent, so a failing body sends nothing
//     and a small object costs one request;
//   - a larger body goes up as a multipart upload, at most PartConcurrency
//     parts on the wire and PartConcurrency+1 part buffers held at once;
//     any failure aborts the upload, so no part is ever assembled into an
//     object;
//   - with Multipart off, larger bodies are spooled to a temporary file and
//     sent with one PutObject.
//
// A body shorter or longer than a non-negative opt.Size fails the same way.
// Transient request failures are retried inside the SDK (MaxAttempts); the
// error returned wraps the last one, for uploader.Classify.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, opt uploader.PutOptions) error {
	if err := uploader.CheckKey(key); err != nil {
		return fmt.Errorf("s3: put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	// Parts are always copied into buffers before they are sent, so the
	// body is never read while a request is on the wire.
	body = &exactReader{r: body, want: opt.Size}
	hint := opt.SizeHint
	if opt.Size >= 0 {
		hint = opt.Size
	}
	var err error
	if s.cfg.Multipart {
		err = s.putStream(ctx, key, body, opt, hint)
	} else {
		err = s.putSingle(ctx, key, body, opt)
	}
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", key, translate(err))
	}
	return nil
}

// ServesContentEncoding is true: objects keep the Content-Encoding they
// were put with.
func (s *Store) ServesContentEncoding() bool { return true }

func (s *Store) input(key string, opt uploader.PutOptions, body io.Reader) *awss3.PutObjectInput {
	in := &awss3.PutObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), Body: body}
	if opt.ContentType != "" {
		in.ContentType = aws.String(opt.ContentType)
	}
	if opt.ContentEncoding != "" {
		in.ContentEncoding = aws.String(opt.ContentEncoding)
	}
	if s.cfg.StorageClass != "" {
		in.StorageClass = types.StorageClass(s.cfg.StorageClass)
	}
	return in
}

func (s *Store) abort(ctx context.Context, key, uploadID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
	})
	if err != nil && !isNoSuchUpload(err) {
		// Parts of an unfinished upload are invisible to readers but cost
		// storage until a lifecycle rule removes them.
		s.log.Warn("could not abort failed multipart upload", zap.String("key", key),
			zap.String("upload_id", uploadID), zap.Error(err))
	}
}

// isNoSuchUpload reports whether err says the multipart upload no longer
// exists (completed or aborted meanwhile).
func isNoSuchUpload(err error) bool {
	var noUpload *types.NoSuchUpload
	return errors.As(err, &noUpload) || httpStatus(err) == http.StatusNotFound
}

// putSingle sends body with one PutObject. Bodies up to one part are held in
// memory; larger ones are spooled to a temporary file, so memory stays
// bounded and the SDK can rewind the body to retry.
func (s *Store) putSingle(ctx context.Context, key string, body io.Reader, opt uploader.PutOptions) error {
	limit := s.cfg.partSize(0)
	head, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if int64(len(head)) <= limit {
		in := s.input(key, opt, bytes.NewReader(head))
		in.ContentLength = aws.Int64(int64(len(head)))
		_, err = s.client.PutObject(ctx, in)
		return err
	}

	spool, err := os.CreateTemp("", "nixs3q-put-*")
	if err != nil {
		return fmt.Errorf("spool body: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	if _, err := spool.Write(head); err != nil {
		return fmt.Errorf("spool body: %w", err)
	}
	if _, err := io.Copy(spool, body); err != nil {
		return fmt.Errorf("spool body: %w", err)
	}
	size, err := spool.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("spool body: %w", err)
	}
	if size > MaxPartSize {
		return fmt.Errorf("object is %d bytes, over the 5 GiB limit of a single PutObject: enable multipart-upload", size)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool body: %w", err)
	}
	in := s.input(key, opt, spool)
	in.ContentLength = aws.Int64(size)
	_, err = s.client.PutObject(ctx, in)
	return err
}

// errTooLong reports a body longer than its declared size.
var errTooLong = errors.New("body is longer than its declared size")

// exactReader fails the read that shows the body's length differs from want
// (when want >= 0), so a wrong-length body never completes an upload.
type exactReader struct {
	r    io.Reader
	want int64
	n    int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if e.want < 0 {
		return n, err
	}
	if e.n > e.want {
		return n, errTooLong
	}
	if err == io.EOF && e.n != e.want {
		return n, fmt.Errorf("body is %d bytes, declared %d: %w", e.n, e.want, io.ErrUnexpectedEOF)
	}
	return n, err
}
