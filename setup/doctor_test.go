package setup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/nix"
)

// dirSetup is a directory cache made by Init, with one signed narinfo,
// served over HTTP.
type dirSetup struct {
	dir, keyFile string
	key          *nix.SecretKey
	server       *httptest.Server
	cfg          DoctorConfig
}

func newDirSetup(t *testing.T) *dirSetup {
	t.Helper()
	tmp := t.TempDir()
	s := &dirSetup{dir: filepath.Join(tmp, "cache"), keyFile: filepath.Join(tmp, "cache.sec")}
	res, err := Init(context.Background(), InitConfig{Store: "file://" + s.dir, SecretKeyFile: s.keyFile}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.key, err = nix.LoadSecretKeyFile(s.keyFile); err != nil {
		t.Fatal(err)
	}
	s.writeNarInfo(t, s.key)
	s.server = httptest.NewServer(http.FileServer(http.Dir(s.dir)))
	t.Cleanup(s.server.Close)
	s.cfg = DoctorConfig{
		Store:         "file://" + s.dir,
		SecretKeyFile: s.keyFile,
		PublicKey:     res.PublicKey.String(),
		PublicURL:     s.server.URL,
		Daemon: func(context.Context) (*hook.Status, error) {
			return &hook.Status{Store: "file://" + s.dir}, nil
		},
	}
	return s
}

// writeNarInfo writes a narinfo signed by key (for a NAR the test does not
// need).
func (s *dirSetup) writeNarInfo(t *testing.T, key *nix.SecretKey) {
	t.Helper()
	sum := sha256.Sum256([]byte("nar"))
	ni := &nix.NarInfo{
		StorePath:   "/nix/store/0ps0ab8sf986mlyxgli4n5impi0fkcm4-doctor-test",
		URL:         "nar/0ps0ab8sf986mlyxgli4n5impi0fkcm4cs3csx0xxkgqzrnzsr6p.nar",
		Compression: "none",
		NarHash:     nix.NewSHA256(sum[:]),
		NarSize:     3,
	}
	if err := ni.Sign(nix.DefaultStoreDir, key); err != nil {
		t.Fatal(err)
	}
	text, err := ni.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "0ps0ab8sf986mlyxgli4n5impi0fkcm4.narinfo"), text, 0o644); err != nil {
		t.Fatal(err)
	}
}

func doctorReport(t *testing.T, cfg DoctorConfig) Report {
	t.Helper()
	r, err := Doctor(context.Background(), cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := r.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("doctor:\n%s", out.String())
	return r
}

func TestDoctorDirectoryHealthy(t *testing.T) {
	s := newDirSetup(t)
	r := doctorReport(t, s.cfg)
	if r.ExitCode() != 0 {
		t.Fatalf("healthy set-up: exit code %d", r.ExitCode())
	}
	for _, name := range []string{"store-url", "directory", "put", "get", "delete", "nix-cache-info", "key-file",
		"key-permissions", "public-key", "public-read", "public-narinfo", "daemon"} {
		if c, ok := r.Get(name); !ok || c.Status != StatusOK {
			t.Errorf("check %s: %+v (present %v), want ok", name, c, ok)
		}
	}
	for _, c := range r.Checks {
		if c.Status != StatusOK && c.Status != StatusSkipped {
			t.Errorf("check %s is %s", c.Name, c.Status)
		}
	}
	err := filepath.WalkDir(s.dir, func(p string, _ fs.DirEntry, err error) error {
		if strings.Contains(p, "nixs3q-doctor") {
			t.Errorf("doctor left %s behind", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Checks   []Check `json:"checks"`
		Status   Status  `json:"status"`
		ExitCode int     `json:"exit_code"`
	}
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil || decoded.Status != StatusOK || len(decoded.Checks) != len(r.Checks) {
		t.Fatalf("JSON report: %v %+v", err, decoded)
	}
}

// TestDoctorDirectoryBroken breaks one link at a time and requires doctor
// to name it, with a fix, and the matching exit code.
func TestDoctorDirectoryBroken(t *testing.T) {
	tests := []struct {
		name   string
		breakf func(t *testing.T, s *dirSetup)
		check  string
		want   Status
		text   string   // in the message
		also   []string // other checks the breakage rightly affects
	}{
		{"world-readable key", func(t *testing.T, s *dirSetup) { chmod(t, s.keyFile, 0o644) }, "key-permissions", StatusFailure, "every user", nil},
		{"group-readable key", func(t *testing.T, s *dirSetup) { chmod(t, s.keyFile, 0o640) }, "key-permissions", StatusWarning, "group", nil},
		{"mismatched public key", func(t *testing.T, s *dirSetup) { s.cfg.PublicKey = mustKey(t).Public().String() }, "public-key", StatusFailure, "is signed with", nil},
		{"missing key file", func(t *testing.T, s *dirSetup) { s.cfg.SecretKeyFile += ".missing" }, "key-file", StatusFailure, "does not exist", nil},
		{"anonymous read denied", func(t *testing.T, s *dirSetup) {
			s.cfg.PublicURL = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "AccessDenied", http.StatusForbidden)
			})).URL
		}, "public-read", StatusFailure, "denied", nil},
		{"wrong public URL", func(t *testing.T, s *dirSetup) { s.cfg.PublicURL = s.server.URL + "/elsewhere" }, "public-read", StatusFailure, "404", nil},
		{"narinfo by another key", func(t *testing.T, s *dirSetup) { s.writeNarInfo(t, mustKey(t)) }, "public-narinfo", StatusWarning, "not signed", nil},
		{"missing directory", func(t *testing.T, s *dirSetup) { s.cfg.Store += "-missing" }, "directory", StatusFailure, "does not exist", []string{"daemon"}},
		{"cache for another store", func(t *testing.T, s *dirSetup) {
			write(t, filepath.Join(s.dir, "nix-cache-info"), nix.CacheInfo{StoreDir: "/gnu/store"}.String())
		}, "nix-cache-info", StatusFailure, "/gnu/store", []string{"public-read"}},
		{"daemon down", func(t *testing.T, s *dirSetup) {
			s.cfg.Daemon = func(context.Context) (*hook.Status, error) { return nil, errors.New("cannot reach the daemon") }
		}, "daemon", StatusWarning, "cannot reach", nil},
		{"daemon with failures", func(t *testing.T, s *dirSetup) {
			s.cfg.Daemon = func(context.Context) (*hook.Status, error) {
				return &hook.Status{Store: "file://" + s.dir, Failed: 1, Failures: []hook.Failure{{Path: "/nix/store/x", LastError: "access denied"}}}, nil
			}
		}, "daemon", StatusWarning, "1 failed", nil},
		{"daemon stuck", func(t *testing.T, s *dirSetup) {
			s.cfg.Daemon = func(context.Context) (*hook.Status, error) {
				return &hook.Status{Store: "file://" + s.dir, Pending: 3, OldestPendingSeconds: 3600}, nil
			}
		}, "daemon", StatusWarning, "waited 1h0m0s", nil},
		{"daemon on another cache", func(t *testing.T, s *dirSetup) {
			s.cfg.Daemon = func(context.Context) (*hook.Status, error) { return &hook.Status{Store: "file:///elsewhere"}, nil }
		}, "daemon", StatusWarning, "file:///elsewhere", nil},
		{"daemon signs with another key", func(t *testing.T, s *dirSetup) {
			other := mustKey(t).Public().String()
			s.cfg.Daemon = func(context.Context) (*hook.Status, error) {
				return &hook.Status{Store: "file://" + s.dir, PublicKey: other}, nil
			}
		}, "key-file", StatusFailure, "the daemon signs with test-1:", nil},
		{"no store URL anywhere", func(t *testing.T, s *dirSetup) { s.cfg.Store, s.cfg.Daemon = "", nil }, "store-url", StatusFailure, "no store URL", nil},
		{"bad store URL", func(t *testing.T, s *dirSetup) { s.cfg.Store = "s3://bucket?colour=red" }, "store-url", StatusFailure, "colour", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDirSetup(t)
			tt.breakf(t, s)
			r := doctorReport(t, s.cfg)
			c, ok := r.Get(tt.check)
			if !ok || c.Status != tt.want || !strings.Contains(c.Message, tt.text) || c.Fix == "" {
				t.Fatalf("check %s = %+v (present %v), want %s naming %q with a fix", tt.check, c, ok, tt.want, tt.text)
			}
			wantCode := map[Status]int{StatusWarning: 1, StatusFailure: 2}[tt.want]
			if r.ExitCode() != wantCode {
				t.Errorf("exit code %d, want %d", r.ExitCode(), wantCode)
			}
			for _, other := range r.Checks {
				if other.Name != tt.check && !slices.Contains(tt.also, other.Name) && other.Status != StatusOK && other.Status != StatusSkipped {
					t.Errorf("unrelated check %s is %s: %s", other.Name, other.Status, other.Message)
				}
			}
		})
	}
}

// TestDoctorStoreFromDaemon: without --store, doctor checks the cache the
// daemon publishes to.
func TestDoctorStoreFromDaemon(t *testing.T) {
	s := newDirSetup(t)
	s.cfg.Store = ""
	r := doctorReport(t, s.cfg)
	c, _ := r.Get("store-url")
	if c.Status != StatusOK || !strings.Contains(c.Message, "the daemon's") {
		t.Fatalf("store-url: %+v", c)
	}
	if r.ExitCode() != 0 {
		t.Fatalf("exit code %d", r.ExitCode())
	}
}

func chmod(t *testing.T, file string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(file, mode); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDoctorDaemonKey: without a key file, the key the daemon reports
// checks --public-key and the narinfos' signatures.
func TestDoctorDaemonKey(t *testing.T) {
	s := newDirSetup(t)
	daemonKey := s.key.Public().String()
	s.cfg.SecretKeyFile = ""
	s.cfg.Daemon = func(context.Context) (*hook.Status, error) {
		return &hook.Status{Store: "file://" + s.dir, PublicKey: daemonKey}, nil
	}
	r := doctorReport(t, s.cfg)
	if c, _ := r.Get("public-narinfo"); c.Status != StatusOK || !strings.Contains(c.Message, "signed by cache-1") {
		t.Errorf("public-narinfo with the daemon's key: %+v", c)
	}
	if c, _ := r.Get("public-key"); c.Status != StatusOK {
		t.Errorf("public-key against the daemon's key: %+v", c)
	}
	if r.ExitCode() != 0 {
		t.Errorf("exit code %d", r.ExitCode())
	}
	s.writeNarInfo(t, mustKey(t))
	if c, _ := doctorReport(t, s.cfg).Get("public-narinfo"); c.Status != StatusWarning {
		t.Errorf("narinfo signed by another key than the daemon's: %+v", c)
	}
}
