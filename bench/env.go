package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/internal/wanproxy"
	"github.com/nixs3q/nixs3q/nix"
)

// binaries are the programs the benchmark runs, built for it.
type binaries struct {
	nixs3q, hook, noop string
}

// env is what every measure shares: binaries, a signing key, one MinIO
// server, the Nix environment and a scratch directory.
type env struct {
	opts     options
	dir      string // scratch, removed at the end
	bins     binaries
	key      *nix.SecretKey
	keyFile  string
	minio    *testenv.MinIO
	nixEnv   []string // testenv.NixEnv(): substituters off, local store
	minioPID int      // 0 when not found: MinIO CPU is then not reported
	http     *http.Client
	log      io.Writer
	buckets  int
	daemons  int // daemon directories made by daemonDir
	// via, when set, is the simulated network that nixs3q's and nix
	// copy's uploads go through (the WAN group); reads that check results
	// go to MinIO directly.
	via *wanproxy.Server
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.log, "bench: "+format+"\n", args...)
}

// minioCPU is the CPU time MinIO has used so far, 0 when unknown.
func (e *env) minioCPU() time.Duration {
	if e.minioPID == 0 {
		return 0
	}
	t, err := procCPU(e.minioPID)
	if err != nil {
		return 0
	}
	return t
}

// newBucket creates a fresh, empty bucket with a unique name.
func (e *env) newBucket(ctx context.Context, prefix string) (string, error) {
	e.buckets++
	name := fmt.Sprintf("%s-%03d", prefix, e.buckets)
	return name, createBucket(ctx, e.minio, name)
}

// s3URL is nixs3q's store URL for bucket.
func (e *env) s3URL(bucket string) string {
	host := e.minio.Host
	if e.via != nil {
		host = e.via.Host()
	}
	return fmt.Sprintf("s3://%s?endpoint=%s&scheme=http&region=%s&compression=zstd", bucket, host, e.minio.Region)
}

// copyURL is the bucket as nix copy writes to it: MinIO's, or the
// simulated network's in front of it.
func (e *env) copyURL(bucket string) string {
	if e.via != nil {
		return e.via.URL + "/" + bucket
	}
	return e.httpURL(bucket)
}

// httpURL is the bucket as a plain HTTP binary cache, how Nix 2.8 (built
// without S3 support) reads and writes it.
func (e *env) httpURL(bucket string) string { return e.minio.Endpoint + "/" + bucket }

func (e *env) daemonEnv() []string {
	return append(slices.Clone(e.nixEnv), e.minio.Env()...)
}

// moduleRoot finds the directory of nixs3q's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("bench: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("bench: run from inside the nixs3q module")
	}
	return filepath.Dir(gomod), nil
}

// buildFlags build the binaries as flake.nix ships them: static (no cgo,
// so no dynamic loader at start-up) and stripped.
var buildFlags = []string{"build", "-trimpath", "-ldflags=-s -w"}

// buildEnv is the environment of go build for the benchmark's binaries.
func buildEnv(extra ...string) []string {
	return append(append(os.Environ(), "CGO_ENABLED=0"), extra...)
}

// buildBinaries builds nixs3q, nixs3q-hook and a no-op program into dir,
// all the same way (buildFlags).
func buildBinaries(ctx context.Context, dir string) (binaries, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return binaries{}, err
	}
	cmd := exec.CommandContext(ctx, "go", append(buildFlags, "-o", dir+string(filepath.Separator), "./cmd/nixs3q", "./cmd/nixs3q-hook")...)
	cmd.Dir = root
	cmd.Env = buildEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("bench: build nixs3q: %w\n%s", err, out)
	}
	noopDir := filepath.Join(dir, "noop-src")
	if err := os.MkdirAll(noopDir, 0o755); err != nil {
		return binaries{}, err
	}
	files := map[string]string{
		"go.mod":  "module noop\n\ngo 1.22\n",
		"main.go": "// Command noop starts and exits: the floor of any Go program's run time.\npackage main\n\nfunc main() {}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(noopDir, name), []byte(text), 0o644); err != nil {
			return binaries{}, err
		}
	}
	cmd = exec.CommandContext(ctx, "go", append(buildFlags, "-o", filepath.Join(dir, "noop"), ".")...)
	cmd.Dir = noopDir
	cmd.Env = buildEnv("GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("bench: build no-op: %w\n%s", err, out)
	}
	return binaries{
		nixs3q: filepath.Join(dir, "nixs3q"),
		hook:   filepath.Join(dir, "nixs3q-hook"),
		noop:   filepath.Join(dir, "noop"),
	}, nil
}

// nixCmd runs a Nix command with the benchmark's Nix environment plus extra
// variables and returns its stdout.
func (e *env) nixCmd(ctx context.Context, extraEnv []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(slices.Clone(e.nixEnv), extraEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := stderr.String()
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return out, fmt.Errorf("bench: %s %s: %w: %s", name, strings.Join(shorten(args), " "), err, msg)
	}
	return out, nil
}

func shorten(args []string) []string {
	if len(args) > 6 {
		return append(args[:6:6], fmt.Sprintf("... (%d more)", len(args)-6))
	}
	return args
}

// machine describes the host.
func machine(ctx context.Context, e *env) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMiB = kb >> 10
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := e.nixCmd(cctx, nil, "nix", "--version"); err == nil {
		m.Nix = strings.TrimSpace(string(out))
	}
	m.MinIO = minioVersion()
	m.LoadBefore = loadAvg()
	return m
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// minioVersion names the MinIO build: its cache directory carries the
// pinned module version (see scripts/deps.sh).
func minioVersion() string {
	if bin := os.Getenv("NIXS3Q_MINIO"); bin != "" {
		return bin
	}
	home, _ := os.UserHomeDir()
	matches, _ := filepath.Glob(filepath.Join(home, ".cache", "nixs3q", "minio-*", "minio"))
	if len(matches) > 0 {
		return strings.TrimPrefix(filepath.Base(filepath.Dir(matches[len(matches)-1])), "minio-")
	}
	return "minio from PATH"
}
