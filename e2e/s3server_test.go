//go:build e2e

package e2e

import (
	"slices"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

// s3Server is a MinIO server for one test.
type s3Server struct {
	m         *testenv.MinIO
	host      string // 127.0.0.1:PORT
	accessKey string
	secretKey string
}

func startS3(t *testing.T) *s3Server {
	t.Helper()
	defer timed(t, "starting MinIO")()
	m := testenv.StartMinIO(t)
	return &s3Server{m: m, host: m.Host, accessKey: m.AccessKey, secretKey: m.SecretKey}
}

// bucket creates a bucket that anyone may read (as Nix substitutes from it
// over plain HTTP) and returns a view of it.
func (s *s3Server) bucket(t *testing.T, name string) bucketCache {
	t.Helper()
	s.m.CreateBucket(t, name, true)
	return bucketCache{endpoint: s.m.Endpoint, bucket: name, s3: s.m.Client()}
}

// baseEnv is the daemon environment without S3 credentials: Nix's test
// settings, and nothing from the user's AWS configuration.
func (s *s3Server) baseEnv(n *nixTool) []string {
	return append(slices.Clone(n.env),
		"AWS_REGION="+s.m.Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null")
}

// daemonEnv is baseEnv plus the server's credentials.
func (s *s3Server) daemonEnv(n *nixTool) []string {
	return append(s.baseEnv(n), s.m.Env()...)
}
