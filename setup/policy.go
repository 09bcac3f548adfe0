package setup

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// anonymousReadSid names the statement Init adds to a bucket policy.
const anonymousReadSid = "AllowDirectReads"

// policyDocument and policyGrant render the policies nixs3q prints and
// sets, with their fields in the order AWS's documentation shows them.
type policyDocument struct {
	ID        string        `json:"Id,omitempty"`
	Version   string        `json:"Version"`
	Statement []policyGrant `json:"Statement"`
}

type policyGrant struct {
	Sid       string   `json:"Sid"`
	Effect    string   `json:"Effect"`
	Principal any      `json:"Principal,omitempty"`
	Action    []string `json:"Action"`
	Resource  []string `json:"Resource"`
}

// anonymousReadStatement is the statement of the Lix (and Nix) manual's
// "Serving a Nix store via S3": anyone may read objects and ask for the
// bucket's location, nobody may list it.
func anonymousReadStatement(bucket string) policyGrant {
	return policyGrant{
		Sid:       anonymousReadSid,
		Effect:    "Allow",
		Principal: "*",
		Action:    []string{"s3:GetObject", "s3:GetBucketLocation"},
		Resource:  []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"},
	}
}

// AnonymousReadPolicy is the bucket policy that lets Nix clients
// substitute from bucket over plain HTTP(S) without credentials.
func AnonymousReadPolicy(bucket string) string {
	return render(policyDocument{ID: "DirectReads", Version: "2012-10-17", Statement: []policyGrant{anonymousReadStatement(bucket)}})
}

func render(doc any) string {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err) // only fixed types of this file are rendered
	}
	return string(b)
}

// WriterPolicy is the IAM policy the daemon's credentials need on bucket.
// With gc, it also grants s3:DeleteObject on the whole bucket, which only
// 'nixs3q gc' uses; without, only on ProbePrefix, so that 'nixs3q doctor'
// can remove its probes. The read-only bucket actions let doctor check the
// bucket's location, lifecycle rules and versioning with the same
// credentials.
func WriterPolicy(bucket string, gc bool) string {
	objectActions := []string{"s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"}
	if gc {
		objectActions = append(objectActions, "s3:DeleteObject")
	}
	statements := []policyGrant{
		{
			Sid:      "NixCacheObjects",
			Effect:   "Allow",
			Action:   objectActions,
			Resource: []string{"arn:aws:s3:::" + bucket + "/*"},
		},
		{
			Sid:    "NixCacheBucket",
			Effect: "Allow",
			Action: []string{"s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:GetLifecycleConfiguration",
				"s3:ListBucket", "s3:ListBucketMultipartUploads"},
			Resource: []string{"arn:aws:s3:::" + bucket},
		},
	}
	if !gc {
		statements = append(statements, policyGrant{
			Sid:      "NixCacheDoctorProbes",
			Effect:   "Allow",
			Action:   []string{"s3:DeleteObject"},
			Resource: []string{"arn:aws:s3:::" + bucket + "/" + ProbePrefix + "*"},
		})
	}
	return render(policyDocument{Version: "2012-10-17", Statement: statements})
}

// stringOrList is a policy field that is either one string or a list.
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

type policyStatement struct {
	Effect    string          `json:"Effect"`
	Principal json.RawMessage `json:"Principal"`
	Action    stringOrList    `json:"Action"`
	Resource  stringOrList    `json:"Resource"`
	Condition json.RawMessage `json:"Condition"`
}

// isEveryone reports whether a policy Principal means anyone: "*",
// {"AWS": "*"} or {"AWS": ["*"]}.
func isEveryone(raw json.RawMessage) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == "*"
	}
	var m map[string]stringOrList
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	return slices.Contains(m["AWS"], "*")
}

// statements decodes a policy's Statement, which is one object or a list.
func statements(policy string) ([]policyStatement, map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return nil, nil, fmt.Errorf("bucket policy is not JSON: %w", err)
	}
	raw, err := json.Marshal(doc["Statement"])
	if err != nil {
		return nil, nil, err
	}
	var list []policyStatement
	if err := json.Unmarshal(raw, &list); err != nil {
		var one policyStatement
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, nil, fmt.Errorf("bucket policy Statement: %w", err)
		}
		list = []policyStatement{one}
	}
	return list, doc, nil
}

// GrantsAnonymousRead reports whether policy lets anyone, without a
// condition, get every object of bucket. A Deny statement for everyone on
// objects makes it false.
func GrantsAnonymousRead(policy, bucket string) bool {
	if strings.TrimSpace(policy) == "" {
		return false
	}
	list, _, err := statements(policy)
	if err != nil {
		return false
	}
	granted := false
	for _, st := range list {
		if !isEveryone(st.Principal) || !coversObjects(st.Resource, bucket) || !allowsGet(st.Action) {
			continue
		}
		switch {
		case strings.EqualFold(st.Effect, "Deny"):
			return false
		case strings.EqualFold(st.Effect, "Allow") && len(st.Condition) == 0:
			granted = true
		}
	}
	return granted
}

func coversObjects(resources []string, bucket string) bool {
	for _, r := range resources {
		if r == "*" || r == "arn:aws:s3:::"+bucket+"/*" || r == "arn:aws:s3:::*" {
			return true
		}
	}
	return false
}

func allowsGet(actions []string) bool {
	for _, a := range actions {
		if a == "*" || a == "s3:*" || a == "s3:GetObject" || a == "s3:Get*" {
			return true
		}
	}
	return false
}

// WithAnonymousRead returns policy with the anonymous-read statement added,
// keeping every other statement. An empty policy gives AnonymousReadPolicy.
func WithAnonymousRead(policy, bucket string) (string, error) {
	if strings.TrimSpace(policy) == "" {
		return AnonymousReadPolicy(bucket), nil
	}
	_, doc, err := statements(policy)
	if err != nil {
		return "", err
	}
	var list []any
	switch st := doc["Statement"].(type) {
	case []any:
		list = st
	case nil:
	default:
		list = []any{st}
	}
	doc["Statement"] = append(list, anonymousReadStatement(bucket))
	if doc["Version"] == nil {
		doc["Version"] = "2012-10-17"
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b), nil
}
