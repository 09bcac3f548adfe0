package setup

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestGrantsAnonymousRead(t *testing.T) {
	tests := []struct {
		name, policy string
		want         bool
	}{
		{"none", "", false},
		{"lix manual", AnonymousReadPolicy("cache"), true},
		{"another bucket", AnonymousReadPolicy("other"), false},
		{"principal AWS list", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::cache/*"]}]}`, true},
		{"single statement object", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::cache/*"}}`, true},
		{"a user only", `{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:user/x"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::cache/*"]}]}`, false},
		{"list only", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::cache"]}]}`, false},
		{"conditional", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::cache/*"],"Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`, false},
		{"allowed then denied", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::cache/*"]},{"Effect":"Deny","Principal":"*","Action":["s3:*"],"Resource":["arn:aws:s3:::cache/*"]}]}`, false},
		{"not JSON", `{`, false},
	}
	for _, tt := range tests {
		if got := GrantsAnonymousRead(tt.policy, "cache"); got != tt.want {
			t.Errorf("%s: GrantsAnonymousRead = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWithAnonymousReadKeepsStatements(t *testing.T) {
	existing := `{"Version":"2012-10-17","Statement":[{"Sid":"Keep","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:user/x"]},"Action":["s3:PutObject"],"Resource":["arn:aws:s3:::cache/*"]}]}`
	merged, err := WithAnonymousRead(existing, "cache")
	if err != nil {
		t.Fatal(err)
	}
	if !GrantsAnonymousRead(merged, "cache") {
		t.Fatalf("merged policy does not grant anonymous read:\n%s", merged)
	}
	var doc struct{ Statement []map[string]any }
	if err := json.Unmarshal([]byte(merged), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Statement) != 2 || doc.Statement[0]["Sid"] != "Keep" {
		t.Fatalf("merged policy lost or reordered the existing statement:\n%s", merged)
	}
	if _, err := WithAnonymousRead("not json", "cache"); err == nil {
		t.Fatal("WithAnonymousRead accepted a policy that is not JSON")
	}
}

func TestWriterPolicy(t *testing.T) {
	for _, gc := range []bool{false, true} {
		p := WriterPolicy("cache", gc)
		var doc map[string]any
		if err := json.Unmarshal([]byte(p), &doc); err != nil {
			t.Fatalf("gc=%v: not JSON: %v", gc, err)
		}
		for _, action := range []string{"s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket",
			"s3:ListBucketMultipartUploads", "s3:ListMultipartUploadParts", "s3:PutObject"} {
			if !strings.Contains(p, `"`+action+`"`) {
				t.Errorf("gc=%v: policy lacks %s", gc, action)
			}
		}
		var parsed struct {
			Statement []struct {
				Action   []string
				Resource []string
			}
		}
		if err := json.Unmarshal([]byte(p), &parsed); err != nil {
			t.Fatal(err)
		}
		deletes := map[string]bool{}
		for _, st := range parsed.Statement {
			if slices.Contains(st.Action, "s3:DeleteObject") {
				for _, r := range st.Resource {
					deletes[r] = true
				}
			}
		}
		if deletes["arn:aws:s3:::cache/*"] != gc {
			t.Errorf("gc=%v: s3:DeleteObject on the whole bucket = %v", gc, !gc)
		}
		if !gc && !deletes["arn:aws:s3:::cache/"+ProbePrefix+"*"] {
			t.Errorf("gc=false: the doctor's probes cannot be deleted:\n%s", p)
		}
	}
}
