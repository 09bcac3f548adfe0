package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/nix"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds nixs3q once for the tests that run it as a real process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nixs3q-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "nixs3q")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatalf("build nixs3q: %v", buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

func TestMain(m *testing.M) {
	if sock := os.Getenv(floodEnv); sock != "" {
		flood(sock)
		os.Exit(0)
	}
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// writeKey makes a signing key file and returns its path and contents.
func writeKey(t *testing.T, dir string) (string, string) {
	t.Helper()
	k, err := nix.GenerateKey("test-cache-1")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "key.sec")
	if err := os.WriteFile(p, []byte(k.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, k.String()
}

// addStorePath adds a fresh file to the real Nix store.
func addStorePath(t *testing.T, env []string, name string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	content := name + " " + time.Now().Format(time.RFC3339Nano)
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nix-store", "--add", f)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-store --add: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// syncBuffer collects a process's output safely across goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSystemdIntegration starts the daemon the way systemd does: the socket
// passed as fd 3 with LISTEN_FDS/LISTEN_PID, NOTIFY_SOCKET and WATCHDOG_USEC
// set. It checks the notify messages, serves a push through the passed
// socket, scrapes /metrics after the upload, and stops it with SIGTERM.
func TestSystemdIntegration(t *testing.T) {
	t.Parallel()
	env := testenv.RequireNix(t)
	dir := t.TempDir()
	keyFile, keyText := writeKey(t, dir)
	cache := filepath.Join(dir, "cache")
	sock := filepath.Join(dir, "activated.sock")

	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	lf, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false) // the socket stays, as systemd's does
	l.Close()
	defer lf.Close()

	notifyPath := filepath.Join(dir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	msgs := make(chan string, 1000)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()

	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ml.Addr().String()
	ml.Close()

	ownSocket := filepath.Join(dir, "own", "should-not-exist.sock")
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, binary(t), "daemon",
		"--store", "file://"+cache, "--secret-key-file", keyFile, "--state-dir", filepath.Join(dir, "state"),
		"--socket", ownSocket, "--metrics-listen", metricsAddr, "--log-format", "json", "--log-level", "debug")
	cmd.Env = append(env, "LISTEN_FDS=1", "NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=400000")
	cmd.ExtraFiles = []*os.File{lf}
	var logs syncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()

	seen := map[string]int{}
	var statuses []string
	expect := func(what string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for seen[what] == 0 {
			select {
			case m := <-msgs:
				for _, line := range strings.Split(m, "\n") {
					k, _, _ := strings.Cut(line, "=")
					seen[line]++
					seen[k+"="]++
					if k == "STATUS" {
						statuses = append(statuses, line)
					}
				}
			case err := <-exited:
				t.Fatalf("daemon exited early (%v) waiting for %s", err, what)
			case <-deadline:
				t.Fatalf("no %s notification; got %v", what, seen)
			}
		}
	}
	expect("READY=1")
	expect("STATUS=")

	path := addStorePath(t, env, "activated-path")
	cliEnv := append(os.Environ(), hook.SocketEnv+"="+sock)
	if out, err := run(t, cliEnv, "push", path); err != nil {
		t.Fatalf("push through the activated socket: %v: %s", err, out)
	}
	if out, err := run(t, cliEnv, "wait", "--timeout", "60s"); err != nil {
		t.Fatalf("wait: %v: %s", err, out)
	}
	hp, _ := nix.ParseStorePath(nix.DefaultStoreDir, path)
	if _, err := os.Stat(filepath.Join(cache, hp.HashPart+".narinfo")); err != nil {
		t.Fatalf("narinfo not published: %v", err)
	}
	if _, err := os.Stat(ownSocket); !os.IsNotExist(err) {
		t.Fatalf("the daemon created its own socket although systemd passed one: %v", err)
	}

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"nixs3q_uploaded_paths_total 1",
		`nixs3q_queue_items{state="pending"} 0`,
		`nixs3q_queue_items{state="in_flight"} 0`,
		`nixs3q_queue_items{state="failed"} 0`,
		"nixs3q_hook_to_published_seconds_count 1",
		"nixs3q_upload_duration_seconds_count 1",
		"nixs3q_skipped_paths_total 0",
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(string(body), "nixs3q_uploaded_bytes_total ") || strings.Contains(string(body), "nixs3q_uploaded_bytes_total 0\n") {
		t.Errorf("/metrics has no uploaded bytes")
	}

	expect("WATCHDOG=1")
	cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1")
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not exit after SIGTERM")
	}
	if n := seen["WATCHDOG=1"]; n < 2 {
		t.Errorf("watchdog fed %d times in the run, want several", n)
	}

	// Logs are JSON lines under systemd and never contain the secret key.
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
	}
	secret := keyText[strings.Index(keyText, ":")+1:]
	if strings.Contains(logs.String(), secret) {
		t.Fatal("the signing key's secret appears in the log")
	}
	if !strings.Contains(logs.String(), path) {
		t.Error("the log does not name the uploaded path")
	}
	if len(statuses) == 0 || !strings.Contains(statuses[0], "pending") {
		t.Errorf("STATUS lines %v", statuses)
	}
}

// TestSecretsNeverLogged runs the daemon at debug level against an S3
// endpoint that refuses connections, with AWS credentials in the
// environment, and checks that neither they nor the signing key reach the
// log or the status output.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	env := testenv.RequireNix(t)
	dir := t.TempDir()
	keyFile, keyText := writeKey(t, dir)
	sock := filepath.Join(dir, "d.sock")
	const accessKey, secretKey, token = "AKIANIXS3QTESTKEY", "nixs3q/TOP+SECRET/value", "nixs3qSESSIONtoken"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "daemon",
		"--store", "s3://test-bucket?endpoint=http://127.0.0.1:1&region=us-east-1", "--secret-key-file", keyFile,
		"--state-dir", filepath.Join(dir, "state"), "--socket", sock, "--max-attempts", "1",
		"--log-format", "console", "--log-level", "debug")
	cmd.Env = append(env, "AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey,
		"AWS_SESSION_TOKEN="+token, "AWS_EC2_METADATA_DISABLED=true")
	var logs syncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()
	cliEnv := append(os.Environ(), hook.SocketEnv+"="+sock)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("daemon socket never appeared")
		}
		time.Sleep(50 * time.Millisecond)
	}
	path := addStorePath(t, env, "secret-test")
	if out, err := run(t, cliEnv, "push", path); err != nil {
		t.Fatalf("push: %v: %s", err, out)
	}
	var status string
	for {
		out, err := run(t, cliEnv, "status", "--json")
		if err != nil {
			t.Fatalf("status: %v: %s", err, out)
		}
		var st hook.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v: %s", err, out)
		}
		if st.Failed == 1 {
			status = out
			if len(st.Failures) != 1 || !strings.Contains(st.Failures[0].LastError, "127.0.0.1:1") {
				t.Errorf("failure %+v does not say what failed", st.Failures)
			}
			break
		}
		if time.Now().After(deadline.Add(60 * time.Second)) {
			t.Fatalf("upload never failed: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	human, _ := run(t, cliEnv, "status")
	secret := keyText[strings.Index(keyText, ":")+1:]
	for name, s := range map[string]string{"secret access key": secretKey, "session token": token, "signing key": secret} {
		for where, text := range map[string]string{"log": logs.String(), "status --json": status, "status": human} {
			if strings.Contains(text, s) {
				t.Errorf("the %s appears in the %s", name, where)
			}
		}
	}
	if !strings.Contains(logs.String(), "upload failed") {
		t.Error("the failure was not logged")
	}
}

func TestDaemonRefusesBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	keyFile, _ := writeKey(t, dir)
	bad := filepath.Join(dir, "bad.sec")
	os.WriteFile(bad, []byte("name-only-no-colon\n"), 0o600)
	pub := filepath.Join(dir, "pub")
	os.WriteFile(pub, []byte("test-cache-1:"+strings.Repeat("A", 43)+"=\n"), 0o600)
	exposed := filepath.Join(dir, "exposed.sec")
	keyText, _ := os.ReadFile(keyFile)
	os.WriteFile(exposed, keyText, 0o644)
	os.Chmod(exposed, 0o644)
	state := filepath.Join(dir, "state")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no store", []string{"--secret-key-file", keyFile}, "--store is required"},
		{"no key", []string{"--store", "file://" + dir + "/c"}, "--secret-key-file is required"},
		{"missing key file", []string{"--store", "file://" + dir + "/c", "--secret-key-file", dir + "/nope"}, "no such file"},
		{"malformed key", []string{"--store", "file://" + dir + "/c", "--secret-key-file", bad}, "malformed"},
		{"public key given", []string{"--store", "file://" + dir + "/c", "--secret-key-file", pub}, "secret key file"},
		{"unknown scheme", []string{"--store", "ftp://x", "--secret-key-file", keyFile}, "ftp"},
		{"unknown parameter", []string{"--store", "s3://b?regoin=x", "--secret-key-file", keyFile}, "regoin"},
		{"bad compression", []string{"--store", "file://" + dir + "/c", "--secret-key-file", keyFile, "--compression", "lz4"}, "lz4"},
		{"key file readable by others", []string{"--store", "file://" + dir + "/c", "--secret-key-file", exposed}, "--allow-exposed-key"},
		{"bare upstream key name", []string{"--store", "file://" + dir + "/c", "--secret-key-file", keyFile, "--skip-signed-by", "cache.nixos.org-1"}, "cache.nixos.org-1:<base64 public key>"},
		{"bad exclude pattern", []string{"--store", "file://" + dir + "/c", "--secret-key-file", keyFile, "--exclude", "(unclosed"}, "exclude pattern"},
		{"bad size", []string{"--store", "file://" + dir + "/c", "--secret-key-file", keyFile, "--max-nar-size", "2GB"}, "--max-nar-size"},
		{"failed logs", []string{"--store", "file://" + dir + "/c", "--secret-key-file", keyFile, "--upload-logs", "failed"}, "no post-build-hook after a failed build"},
		{"bad retry", []string{"--store", "s3://b?retry-delay=soon", "--secret-key-file", keyFile}, "retry-delay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"daemon", "--state-dir", state, "--socket", filepath.Join(dir, "s.sock")}, tc.args...)
			out, err := run(t, os.Environ(), args...)
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want 2; output %s", err, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("output %q does not mention %q", out, tc.want)
			}
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Fatal("a refused configuration created the state directory")
			}
		})
	}
}

// With --allow-exposed-key, a key file readable by others only gives a
// warning, and the daemon serves.
func TestDaemonAllowExposedKey(t *testing.T) {
	dir := t.TempDir()
	keyFile, _ := writeKey(t, dir)
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	cmd := exec.Command(binary(t), "daemon", "--store", "file://"+dir+"/c", "--secret-key-file", keyFile,
		"--state-dir", filepath.Join(dir, "state"), "--socket", sock, "--allow-exposed-key", "--log-format", "json")
	var logs syncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	env := append(os.Environ(), hook.SocketEnv+"="+sock)
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := run(t, env, "status")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon with an exposed key and --allow-exposed-key does not serve: %v %s\nlog: %s", err, out, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "secret key file is exposed") || !strings.Contains(logs.String(), "mode 0644") {
		t.Errorf("no warning about the exposed key file:\n%s", logs.String())
	}
}

func TestClientsWithoutDaemon(t *testing.T) {
	env := append(os.Environ(), hook.SocketEnv+"="+filepath.Join(t.TempDir(), "none.sock"))
	for _, args := range [][]string{{"status"}, {"push", "/nix/store/x"}, {"retry"}, {"wait", "--timeout", "1s"}} {
		out, err := run(t, env, args...)
		if err == nil || !strings.Contains(out, "cannot reach the nixs3q daemon") {
			t.Errorf("%v: err %v, output %q", args, err, out)
		}
	}
}

// A cache made for another store directory is a configuration error: the
// daemon refuses to start with status 2 and says why, and writes nothing
// into the cache.
func TestDaemonRefusesCacheOfAnotherStore(t *testing.T) {
	dir := t.TempDir()
	keyFile, _ := writeKey(t, dir)
	cache := filepath.Join(dir, "cache")
	os.MkdirAll(cache, 0o755)
	info := "StoreDir: /gnu/store\nWantMassQuery: 1\nPriority: 40\n"
	os.WriteFile(filepath.Join(cache, "nix-cache-info"), []byte(info), 0o644)
	out, err := run(t, os.Environ(), "daemon", "--store", "file://"+cache, "--secret-key-file", keyFile,
		"--state-dir", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "s.sock"))
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 || !strings.Contains(out, "another store directory") {
		t.Fatalf("exit %v, output %q; want status 2 naming the store directory", err, out)
	}
	var files []string
	filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 1 {
		t.Fatalf("the cache was written to: %v", files)
	}
	if b, _ := os.ReadFile(filepath.Join(cache, "nix-cache-info")); string(b) != info {
		t.Fatalf("nix-cache-info changed: %q", b)
	}
}
