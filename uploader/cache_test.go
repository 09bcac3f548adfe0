package uploader_test

import (
	"testing"

	"github.com/nixs3q/nixs3q/uploader"
)

func TestCheckKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"nix-cache-info", true},
		{"0123456789abcdfghijklmnpqrsvwxyz.narinfo", true},
		{"nar/1b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar.zst", true},
		{"log/abc-foo.drv", true},
		{"..narinfo", true},
		{"", false},
		{"/nix-cache-info", false},
		{"../x", false},
		{"nar/../x", false},
		{"nar/..", false},
		{"./x", false},
		{"nar//x", false},
		{"nar/", false},
		{`nar\x`, false},
		{"nar/x\x00", false},
	} {
		if err := uploader.CheckKey(tc.key); (err == nil) != tc.ok {
			t.Errorf("CheckKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
	}
}
