package setup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
)

func TestInitDirectoryIdempotent(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	cfg := InitConfig{Store: "file://" + tmp + "/cache", SecretKeyFile: filepath.Join(tmp, "cache.sec")}
	res, err := Init(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed() || len(res.Steps) != 3 {
		t.Fatalf("first run: %+v", res.Steps)
	}
	info, err := os.ReadFile(filepath.Join(tmp, "cache", "nix-cache-info"))
	if err != nil || string(info) != "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n" {
		t.Fatalf("nix-cache-info = %q, %v", info, err)
	}
	if res.PublicKey.Name != "cache-1" {
		t.Errorf("key name %q, want the directory's name with -1", res.PublicKey.Name)
	}
	keyBefore, _ := os.ReadFile(cfg.SecretKeyFile)

	again, err := Init(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed() {
		t.Fatalf("second run changed something: %+v", again.Steps)
	}
	var out bytes.Buffer
	again.WriteSummary(&out)
	if !strings.Contains(out.String(), "Nothing to do") {
		t.Errorf("second run does not say it changed nothing:\n%s", out.String())
	}
	if keyAfter, _ := os.ReadFile(cfg.SecretKeyFile); !bytes.Equal(keyBefore, keyAfter) || again.PublicKey.String() != res.PublicKey.String() {
		t.Error("the key changed on the second run")
	}

	// A --key-name that differs from the existing key's is reported as
	// ignored: the key is never replaced.
	named := cfg
	named.KeyName = "other-1"
	renamed, err := Init(ctx, named, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if renamed.Changed() || renamed.PublicKey.Name != "cache-1" || !strings.Contains(renamed.Steps[0].What, "--key-name other-1 ignored") {
		t.Errorf("init with another --key-name: changed %v, key %s, first step %q; want the key kept and the flag reported as ignored",
			renamed.Changed(), renamed.PublicKey.Name, renamed.Steps[0].What)
	}

	// An explicit, different priority is a change; the same one is not.
	cfg.Priority = 30
	if res, err := Init(ctx, cfg, zaptest.NewLogger(t)); err != nil || !res.Changed() {
		t.Fatalf("priority change: changed %v, %v", res.Changed(), err)
	}
	if res, err := Init(ctx, cfg, zaptest.NewLogger(t)); err != nil || res.Changed() {
		t.Fatalf("same priority again: changed %v, %v", res.Changed(), err)
	}

	out.Reset()
	res.WriteInstructions(&out)
	for _, want := range []string{res.PublicKey.String(), "extra-substituters = file://" + tmp + "/cache", "services.nixs3q", "nixs3q doctor"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("instructions lack %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "IAM") {
		t.Errorf("instructions for a directory print an IAM policy:\n%s", out.String())
	}
}

func TestInitRefusesBadInputWithoutChanges(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	otherStore := filepath.Join(tmp, "gnu")
	if err := os.MkdirAll(otherStore, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(otherStore, "nix-cache-info"), []byte(nix.CacheInfo{StoreDir: "/gnu/store", Priority: 40}.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  InitConfig
	}{
		{"no store", InitConfig{SecretKeyFile: filepath.Join(tmp, "k1")}},
		{"bad URL", InitConfig{Store: "s3://b?colour=red", SecretKeyFile: filepath.Join(tmp, "k2")}},
		{"relative dir", InitConfig{Store: "file:relative", SecretKeyFile: filepath.Join(tmp, "k3")}},
		{"public dir", InitConfig{Store: "file://" + tmp + "/pub", SecretKeyFile: filepath.Join(tmp, "k4"), PublicRead: true}},
		{"bad key name", InitConfig{Store: "file://" + tmp + "/named", SecretKeyFile: filepath.Join(tmp, "k5"), KeyName: "a:b"}},
	}
	for _, tt := range tests {
		if _, err := Init(ctx, tt.cfg, zaptest.NewLogger(t)); err == nil {
			t.Errorf("%s: Init succeeded", tt.name)
		}
		if _, err := os.Stat(tt.cfg.SecretKeyFile); err == nil {
			t.Errorf("%s: a key file was written", tt.name)
		}
	}
	for _, d := range []string{"pub", "named"} {
		if _, err := os.Stat(filepath.Join(tmp, d)); err == nil {
			t.Errorf("a refused Init created %s", d)
		}
	}
	_, err := Init(ctx, InitConfig{Store: "file://" + otherStore, SecretKeyFile: filepath.Join(tmp, "k6")}, zaptest.NewLogger(t))
	if !errors.Is(err, uploader.ErrStoreDirMismatch) {
		t.Errorf("a cache for /gnu/store: %v, want ErrStoreDirMismatch", err)
	}
}
