// Package minioadmin creates restricted users on a test MinIO server through
// MinIO's admin API, so that tests can run nixs3q with the permissions a
// real deployment grants, and with deliberately missing ones. It is a
// package of its own so that only the tests that need the admin client link
// it.
package minioadmin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

// User is a MinIO user's credentials.
type User struct {
	AccessKey, SecretKey string
}

// Env returns the environment that points the AWS default chain at u.
func (u User) Env(region string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + u.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + u.SecretKey,
		"AWS_REGION=" + region,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}
}

// AddUser creates the user name on m with a random secret and attaches a
// new policy holding policy (an IAM policy document) to it alone.
func AddUser(t testing.TB, m *testenv.MinIO, name, policy string) User {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(m.Endpoint)
	if err != nil {
		t.Fatalf("minioadmin: endpoint %q: %v", m.Endpoint, err)
	}
	adm, err := madmin.New(u.Host, m.AccessKey, m.SecretKey, u.Scheme == "https")
	if err != nil {
		t.Fatalf("minioadmin: %v", err)
	}
	var b [16]byte
	rand.Read(b[:])
	user := User{AccessKey: name, SecretKey: hex.EncodeToString(b[:])}
	if err := adm.AddUser(ctx, user.AccessKey, user.SecretKey); err != nil {
		t.Fatalf("minioadmin: add user %s: %v", name, err)
	}
	policyName := "policy-" + name
	if err := adm.AddCannedPolicy(ctx, policyName, []byte(policy)); err != nil {
		t.Fatalf("minioadmin: add policy for %s: %v\n%s", name, err, policy)
	}
	if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{policyName}, User: name}); err != nil {
		t.Fatalf("minioadmin: attach policy to %s: %v", name, err)
	}
	return user
}
