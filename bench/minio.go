package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

// runTB lets testenv.StartMinIO run outside a test. testing.TB cannot be
// implemented outside package testing, so the interface is embedded (nil)
// and only the methods StartMinIO and Missing call are provided; a call to
// any other method panics, which the benchmark reports as an error.
type runTB struct {
	testing.TB
	dir      string
	cleanups []func()
}

// tbAbort carries a Fatalf or Skipf out of StartMinIO.
type tbAbort struct{ msg string }

func (t *runTB) Helper() {}

func (t *runTB) TempDir() string {
	dir, err := os.MkdirTemp(t.dir, "minio-")
	if err != nil {
		panic(tbAbort{fmt.Sprintf("temp dir: %v", err)})
	}
	return dir
}

func (t *runTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

func (t *runTB) Fatalf(format string, args ...any) { panic(tbAbort{fmt.Sprintf(format, args...)}) }

func (t *runTB) Skipf(format string, args ...any) { panic(tbAbort{fmt.Sprintf(format, args...)}) }

func (t *runTB) Logf(format string, args ...any) {}

// close runs the cleanups, last registered first.
func (t *runTB) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

// startMinIO starts a MinIO server under dir with testenv.StartMinIO. The
// returned stop function stops it.
func startMinIO(dir string) (m *testenv.MinIO, stop func(), err error) {
	tb := &runTB{dir: dir}
	defer func() {
		if r := recover(); r != nil {
			tb.close()
			if a, ok := r.(tbAbort); ok {
				err = errors.New("bench: minio: " + a.msg)
				return
			}
			panic(r)
		}
	}()
	m = testenv.StartMinIO(tb)
	return m, tb.close, nil
}

// bucketPolicy lets anonymous clients get and put objects (but not list):
// Nix 2.8 can write to a binary cache over plain HTTP PUT, and reads
// narinfos the same way; nixs3q itself always signs its requests.
func bucketPolicy(name string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",`+
		`"Principal":{"AWS":["*"]},"Action":["s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, name)
}

// createBucket creates an empty bucket readable and writable over plain HTTP.
func createBucket(ctx context.Context, m *testenv.MinIO, name string) error {
	client := m.Client()
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("bench: create bucket %s: %w", name, err)
	}
	if _, err := client.PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: aws.String(name), Policy: aws.String(bucketPolicy(name))}); err != nil {
		return fmt.Errorf("bench: bucket policy %s: %w", name, err)
	}
	return nil
}

// httpGet fetches url; a missing object gives fs-style ok=false.
func httpGet(ctx context.Context, client *http.Client, url string) (body []byte, ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return nil, false, err
	case resp.StatusCode == http.StatusOK:
		return b, true, nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden:
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
}

// httpHead reports whether url exists.
func httpHead(ctx context.Context, client *http.Client, url string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound, http.StatusForbidden:
		return false, nil
	}
	return false, fmt.Errorf("HEAD %s: %s", url, resp.Status)
}

// pollInterval is how often the latency measure asks for a narinfo.
const pollInterval = 2 * time.Millisecond
