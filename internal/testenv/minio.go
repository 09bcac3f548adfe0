package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// minioReadyTimeout bounds MinIO's start-up; generous because test machines
// are often busy compiling.
const minioReadyTimeout = 60 * time.Second

// MinIO is a MinIO server started for one test, listening on loopback only.
type MinIO struct {
	Endpoint  string // http://127.0.0.1:PORT
	Host      string // 127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string
}

// StartMinIO starts a MinIO server with an empty data directory and fresh
// root credentials, waits until it is ready, and stops it when the test
// ends. The binary is $NIXS3Q_MINIO, else the newest
// $HOME/.cache/nixs3q/minio-*/minio, else minio on PATH; without one the
// test is skipped (or failed, see Missing).
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin, err := findMinIO()
	if err != nil {
		Missing(t, "%v", err)
		return nil
	}
	var lastErr error
	for range 3 { // a free port can be taken between probing and binding
		m, err := startMinIO(t, bin)
		if err == nil {
			return m
		}
		lastErr = err
	}
	t.Fatalf("testenv: start MinIO: %v", lastErr)
	return nil
}

func findMinIO() (string, error) {
	if bin := os.Getenv("NIXS3Q_MINIO"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("NIXS3Q_MINIO: %w", err)
		}
		return bin, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		matches, _ := filepath.Glob(filepath.Join(home, ".cache", "nixs3q", "minio-*", "minio"))
		var newest string
		var newestTime time.Time
		for _, m := range matches {
			info, err := os.Stat(m)
			if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
				continue
			}
			if newest == "" || info.ModTime().After(newestTime) {
				newest, newestTime = m, info.ModTime()
			}
		}
		if newest != "" {
			return newest, nil
		}
	}
	bin, err := exec.LookPath("minio")
	if err != nil {
		return "", errors.New("minio not found: set NIXS3Q_MINIO, build it into ~/.cache/nixs3q/minio-VERSION/minio, or put it on PATH")
	}
	return bin, nil
}

func startMinIO(t testing.TB, bin string) (*MinIO, error) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	consolePort, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &MinIO{
		Host:      net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		AccessKey: "nixs3q-" + randomHex(4),
		SecretKey: randomHex(16),
		Region:    "us-east-1",
	}
	m.Endpoint = "http://" + m.Host

	dir := t.TempDir()
	logPath := filepath.Join(dir, "minio.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "server",
		"--address", m.Host,
		"--console-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(consolePort)),
		"--certs-dir", filepath.Join(dir, "certs"),
		"--quiet",
		filepath.Join(dir, "data"))
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"MINIO_ROOT_USER=" + m.AccessKey,
		"MINIO_ROOT_PASSWORD=" + m.SecretKey,
		"MINIO_SITE_REGION=" + m.Region,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Take MinIO down with the test binary if it dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
	}

	if err := waitReady(m.Endpoint, exited); err != nil {
		stop()
		out, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w (exit: %v); log:\n%s", err, waitErr, lastBytes(out, 4000))
	}
	t.Cleanup(stop)
	return m, nil
}

func waitReady(endpoint string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(minioReadyTimeout)
	for time.Now().Before(deadline) {
		resp, err := client.Get(endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("minio exited before it was ready")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("minio not ready after %v", minioReadyTimeout)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b
}

// Client returns an S3 client for the server with the root credentials,
// independent of the environment.
func (m *MinIO) Client() *awss3.Client {
	return awss3.New(awss3.Options{
		Region:                     m.Region,
		Credentials:                credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
		BaseEndpoint:               aws.String(m.Endpoint),
		UsePathStyle:               true,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket creates the bucket name. With anonymousRead, a bucket policy
// lets anyone GetObject (but not list), so Nix can substitute from
// Endpoint/name over plain HTTP, and absent keys answer 403 as on AWS.
func (m *MinIO) CreateBucket(t testing.TB, name string, anonymousRead bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := m.Client()
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v", name, err)
	}
	if !anonymousRead {
		return
	}
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"NixSubstitute","Effect":"Allow",`+
		`"Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, name)
	if _, err := client.PutBucketPolicy(ctx, &awss3.PutBucketPolicyInput{Bucket: aws.String(name), Policy: aws.String(policy)}); err != nil {
		t.Fatalf("testenv: set anonymous read policy on %s: %v", name, err)
	}
}

// Env returns the environment variables that point the AWS default
// credential chain at this server's root user, with instance metadata off.
// The endpoint itself goes in the store URL.
func (m *MinIO) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + m.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + m.SecretKey,
		"AWS_REGION=" + m.Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
