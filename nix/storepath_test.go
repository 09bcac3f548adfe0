package nix

import (
	"errors"
	"strings"
	"testing"
)

const testHash = "n723ddjv0gffvvls2pz8j21x082g9v8p"

func TestParseStorePathValid(t *testing.T) {
	for _, tc := range []struct{ dir, p, name string }{
		{"/nix/store", "/nix/store/" + testHash + "-hx.txt", "hx.txt"},
		{"/nix/store", "/nix/store/" + testHash + "-a", "a"},
		{"/nix/store", "/nix/store/" + testHash + "-A+b-c._?=9", "A+b-c._?=9"},
		{"/nix/store", "/nix/store/" + testHash + "--leading-dash", "-leading-dash"},
		{"/nix/store", "/nix/store/" + testHash + "-.envrc", ".envrc"},
		{"/nix/store", "/nix/store/" + testHash + "-..foo", "..foo"},
		{"/nix/store", "/nix/store/" + testHash + "-" + strings.Repeat("x", 211), strings.Repeat("x", 211)},
		{"/srv/other-store", "/srv/other-store/" + testHash + "-foo-1.0", "foo-1.0"},
	} {
		sp, err := ParseStorePath(tc.dir, tc.p)
		if err != nil {
			t.Errorf("ParseStorePath(%q, %q): %v", tc.dir, tc.p, err)
			continue
		}
		want := StorePath{Dir: tc.dir, HashPart: testHash, Name: tc.name}
		if sp != want {
			t.Errorf("ParseStorePath(%q) = %+v, want %+v", tc.p, sp, want)
		}
		if sp.String() != tc.p {
			t.Errorf("String() = %q, want %q", sp.String(), tc.p)
		}
		if sp.Base() != testHash+"-"+tc.name {
			t.Errorf("Base() = %q", sp.Base())
		}
		fb, err := StorePathFromBase(tc.dir, sp.Base())
		if err != nil || fb != sp {
			t.Errorf("StorePathFromBase(%q, %q) = %+v, %v; want %+v", tc.dir, sp.Base(), fb, err, sp)
		}
	}
}

func TestParseStorePathInvalid(t *testing.T) {
	good := "/nix/store/" + testHash + "-foo"
	for _, tc := range []struct{ name, dir, p, want string }{
		{"empty", "/nix/store", "", "is empty"},
		{"relative", "/nix/store", "nix/store/" + testHash + "-foo", "not an absolute path"},
		{"dotdot", "/nix/store", "/nix/store/../store/" + testHash + "-foo", "not a clean path"},
		{"trailing slash", "/nix/store", good + "/", "not a clean path"},
		{"double slash", "/nix/store", "/nix//store/" + testHash + "-foo", "not a clean path"},
		{"other dir", "/nix/store", "/tmp/x", "is not in the store directory /nix/store"},
		{"prefix dir", "/nix/store", "/nix/store2/" + testHash + "-foo", "is not in the store directory /nix/store"},
		{"nested", "/nix/store", good + "/bin", "not a top-level path in the store directory"},
		{"store dir itself", "/nix/store", "/nix/store", "not in the store directory"},
		{"short hash", "/nix/store", "/nix/store/" + testHash[1:] + "-foo", "32-character hash part"},
		{"no name", "/nix/store", "/nix/store/" + testHash, "32-character hash part"},
		{"empty name", "/nix/store", "/nix/store/" + testHash + "-", "32-character hash part"},
		{"no dash", "/nix/store", "/nix/store/" + testHash + "_foo", "32-character hash part"},
		{"hash bad char", "/nix/store", "/nix/store/e" + testHash[1:] + "-foo", "invalid character 'e' in its hash part"},
		{"hash upper", "/nix/store", "/nix/store/N" + testHash[1:] + "-foo", "invalid character 'N' in its hash part"},
		{"name space", "/nix/store", good + " bar", "invalid character ' ' in its name"},
		{"name unicode", "/nix/store", good + "é", "invalid character"},
		{"name at", "/nix/store", good + "@1", "invalid character '@' in its name"},
		{"name is .", "/nix/store", "/nix/store/" + testHash + "-.", `first component is "."`},
		{"name is ..", "/nix/store", "/nix/store/" + testHash + "-..", `first component is ".."`},
		{"name starts with .-", "/nix/store", "/nix/store/" + testHash + "-.-foo", `first component is "."`},
		{"name starts with ..-", "/nix/store", "/nix/store/" + testHash + "-..-foo", `first component is ".."`},
		{"too long", "/nix/store", "/nix/store/" + testHash + "-" + strings.Repeat("x", 212), "longer than 211"},
		{"bad store dir", "nix/store", good, "clean absolute store directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStorePath(tc.dir, tc.p)
			if err == nil {
				t.Fatalf("ParseStorePath(%q, %q) succeeded", tc.dir, tc.p)
			}
			if !errors.Is(err, ErrInvalidStorePath) {
				t.Errorf("error %v does not match ErrInvalidStorePath", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "nix: ") {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestStorePathErrorMessage(t *testing.T) {
	_, err := ParseStorePath("/nix/store", "/tmp/x")
	if got, want := err.Error(), `nix: "/tmp/x" is not in the store directory /nix/store`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestStorePathFromBaseInvalid(t *testing.T) {
	for _, base := range []string{"", "foo", testHash + "-foo/bar", "../" + testHash + "-foo", testHash + "-.-x", testHash} {
		if _, err := StorePathFromBase("/nix/store", base); !errors.Is(err, ErrInvalidStorePath) {
			t.Errorf("StorePathFromBase(%q) error = %v, want ErrInvalidStorePath", base, err)
		}
	}
}
