package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/nixs3q/nixs3q/uploader"
)

// partPool recycles part buffers of the default part size between uploads;
// buffers of other sizes (very large objects) are allocated per upload.
type partPool struct {
	pool sync.Pool
}

func (p *partPool) get(size int64) []byte {
	if size == DefaultPartSize {
		if b, ok := p.pool.Get().(*[]byte); ok {
			return *b
		}
	}
	return make([]byte, size)
}

func (p *partPool) put(b []byte) {
	if int64(cap(b)) == DefaultPartSize {
		b = b[:cap(b)]
		p.pool.Put(&b)
	}
}

// putStream uploads body to key: with one PutObject when it fits in one
// part, else as a multipart upload of parts read into (pooled) buffers of a
// fixed size, at most PartConcurrency parts on the wire and
// PartConcurrency+1 buffers held at once. Any failure aborts the multipart
// upload, so nothing is ever assembled at key from a failed body.
func (s *Store) putStream(ctx context.Context, key string, body io.Reader, opt uploader.PutOptions, hint int64) error {
	partSize := s.cfg.partSize(hint)
	first := s.parts.get(partSize)
	n, err := io.ReadFull(body, first)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		defer s.parts.put(first)
		return s.putBytes(ctx, key, first[:n], opt)
	}
	if err != nil {
		s.parts.put(first)
		return fmt.Errorf("read body: %w", err)
	}
	second := s.parts.get(partSize)
	m, err := io.ReadFull(body, second)
	if err == io.EOF { // exactly one part
		s.parts.put(second)
		defer s.parts.put(first)
		return s.putBytes(ctx, key, first, opt)
	}
	if err != nil && err != io.ErrUnexpectedEOF {
		s.parts.put(first)
		s.parts.put(second)
		return fmt.Errorf("read body: %w", err)
	}
	return s.multipart(ctx, key, body, opt, partSize, first, second[:m], err == io.ErrUnexpectedEOF)
}

// putBytes sends b with one PutObject; the SDK can rewind it to retry.
func (s *Store) putBytes(ctx context.Context, key string, b []byte, opt uploader.PutOptions) error {
	in := s.input(key, opt, bytes.NewReader(b))
	in.ContentLength = aws.Int64(int64(len(b)))
	_, err := s.client.PutObject(ctx, in)
	return err
}

// multipart uploads first, second (the last part when ended) and the rest
// of body as a multipart upload. It owns the two buffers.
func (s *Store) multipart(ctx context.Context, key string, body io.Reader, opt uploader.PutOptions, partSize int64, first, second []byte, ended bool) error {
	in := s.input(key, opt, nil)
	created, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket: in.Bucket, Key: in.Key, ContentType: in.ContentType, ContentEncoding: in.ContentEncoding, StorageClass: in.StorageClass,
	})
	if err != nil {
		s.parts.put(first)
		s.parts.put(second)
		return err
	}
	id := aws.ToString(created.UploadId)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu       sync.Mutex
		firstErr error
		done     []types.CompletedPart
		wg       sync.WaitGroup
		slots    = make(chan struct{}, s.cfg.PartConcurrency)
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	send := func(num int32, buf []byte, n int) {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			s.parts.put(buf)
			fail(ctx.Err())
			return
		}
		wg.Go(func() {
			defer func() { <-slots; s.parts.put(buf) }()
			out, err := s.client.UploadPart(ctx, &awss3.UploadPartInput{
				Bucket: in.Bucket, Key: in.Key, UploadId: aws.String(id), PartNumber: aws.Int32(num),
				Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
			})
			if err != nil {
				fail(fmt.Errorf("upload part %d: %w", num, err))
				return
			}
			mu.Lock()
			done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
			mu.Unlock()
		})
	}
	send(1, first, len(first))
	send(2, second[:cap(second)], len(second))
	for num := int32(3); !ended && !failed(); num++ {
		if num > 10000 {
			fail(errors.New("object needs more than 10,000 parts"))
			break
		}
		buf := s.parts.get(partSize)
		n, err := io.ReadFull(body, buf)
		switch {
		case err == io.EOF:
			s.parts.put(buf)
			ended = true
			continue
		case err == io.ErrUnexpectedEOF:
			ended = true
		case err != nil:
			s.parts.put(buf)
			fail(fmt.Errorf("read body: %w", err))
			continue
		}
		send(num, buf, n)
	}
	wg.Wait()
	if firstErr == nil {
		slices.SortFunc(done, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
		_, firstErr = s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
			Bucket: in.Bucket, Key: in.Key, UploadId: aws.String(id),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
		})
		if firstErr == nil {
			return nil
		}
	}
	s.abort(ctx, key, id)
	return firstErr
}
