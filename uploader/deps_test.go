package uploader_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The pipeline knows no backend: uploader depends on no AWS or smithy
// package, and its tests import none. Backends translate their errors into
// the neutral causes of errors.go instead; uploader/s3 is the package that
// imports the SDK. (The tests reach the SDK only through internal/testenv,
// which starts MinIO.)
func TestNoBackendDependencies(t *testing.T) {
	for _, tc := range []struct{ what, format string }{
		{"uploader depends on", "{{range .Deps}}{{.}} {{end}}"},
		{"uploader's tests import", "{{range .TestImports}}{{.}} {{end}}{{range .XTestImports}}{{.}} {{end}}"},
	} {
		out, err := exec.Command("go", "list", "-f", tc.format, ".").Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		pkgs := strings.Fields(string(out))
		if len(pkgs) < 10 {
			t.Fatalf("go list found only %d packages: %q", len(pkgs), pkgs)
		}
		for _, pkg := range pkgs {
			if isBackendPackage(pkg) {
				t.Errorf("%s %s", tc.what, pkg)
			}
		}
	}
	for _, pkg := range []string{"github.com/aws/smithy-go", "github.com/aws/aws-sdk-go-v2/aws", "github.com/nixs3q/nixs3q/uploader/s3/x"} {
		if !isBackendPackage(pkg) {
			t.Errorf("isBackendPackage(%q) = false", pkg)
		}
	}
}

func isBackendPackage(pkg string) bool {
	return strings.HasPrefix(pkg, "github.com/aws/") || strings.Contains(pkg, "smithy") ||
		strings.HasPrefix(pkg, "github.com/nixs3q/nixs3q/uploader/s3")
}
