//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemonOpts configures one nixs3q daemon process.
type daemonOpts struct {
	store    string   // --store
	keyFile  string   // --secret-key-file
	stateDir string   // --state-dir
	socket   string   // --socket
	env      []string // the process environment
	flags    []string // further flags
}

// daemonProc is a running (or exited) `nixs3q daemon`.
type daemonProc struct {
	t       *testing.T
	opts    daemonOpts
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// newDaemonOpts returns options with a fresh state directory and a socket in
// a short directory of its own (Unix socket paths are limited to 107 bytes).
func newDaemonOpts(t *testing.T, store, keyFile string, env []string) daemonOpts {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "nixs3q-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	return daemonOpts{
		store:    store,
		keyFile:  keyFile,
		stateDir: filepath.Join(t.TempDir(), "state"),
		socket:   filepath.Join(sockDir, "nixs3q.sock"),
		env:      env,
	}
}

// launchDaemon starts the daemon without waiting for it. At cleanup a
// daemon still running gets SIGTERM and must exit 0; when the test failed,
// the daemon's log is written to the test log.
func launchDaemon(t *testing.T, opts daemonOpts) *daemonProc {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), "daemon-*.log")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"daemon", "--store", opts.store, "--secret-key-file", opts.keyFile,
		"--state-dir", opts.stateDir, "--socket", opts.socket, "--log-format", "console", "--log-level", "debug"}
	args = append(args, opts.flags...)
	cmd := exec.Command(bin.nixs3q, args...)
	cmd.Env = opts.env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting the daemon: %v", err)
	}
	d := &daemonProc{t: t, opts: opts, cmd: cmd, logPath: logFile.Name(), exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		logFile.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		if d.running() {
			d.stop()
		}
		if t.Failed() {
			t.Logf("daemon log %s (pid %d):\n%s", filepath.Base(d.logPath), cmd.Process.Pid, d.log())
		}
	})
	return d
}

// startDaemon starts the daemon and waits until it answers on its socket.
func startDaemon(t *testing.T, opts daemonOpts) *daemonProc {
	t.Helper()
	start := time.Now()
	d := launchDaemon(t, opts)
	if err := d.waitReady(30 * time.Second); err != nil {
		t.Fatalf("daemon did not become ready: %v\nlog:\n%s", err, d.log())
	}
	t.Logf("daemon pid %d ready after %s", d.cmd.Process.Pid, time.Since(start).Round(time.Millisecond))
	return d
}

// waitReady waits until `nixs3q status` succeeds against the daemon. It
// fails when the daemon exits first or timeout passes.
func (d *daemonProc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !d.running() {
			return fmt.Errorf("daemon exited: %v", d.waitErr)
		}
		cmd := exec.Command(bin.nixs3q, "status", "--socket", d.opts.socket)
		if err := cmd.Run(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer on %s after %s", d.opts.socket, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *daemonProc) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// waitExit waits for the process to exit and returns its exit code.
func (d *daemonProc) waitExit(timeout time.Duration) (int, error) {
	select {
	case <-d.exited:
	case <-time.After(timeout):
		return -1, fmt.Errorf("daemon still running after %s", timeout)
	}
	if d.waitErr == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(d.waitErr, &ee) {
		return ee.ExitCode(), nil
	}
	return -1, d.waitErr
}

// stop sends SIGTERM and requires a clean exit (code 0) within 30 seconds.
func (d *daemonProc) stop() {
	d.t.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && d.running() {
		d.t.Errorf("SIGTERM to the daemon: %v", err)
	}
	code, err := d.waitExit(30 * time.Second)
	if err != nil {
		d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("daemon did not stop on SIGTERM: %v", err)
		return
	}
	if code != 0 {
		d.t.Errorf("daemon exited with code %d after SIGTERM (%v)", code, d.waitErr)
		return
	}
	d.t.Logf("daemon stopped by SIGTERM in %s, exit 0", time.Since(start).Round(time.Millisecond))
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemonProc) kill() {
	d.t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		d.t.Fatalf("SIGKILL to the daemon: %v", err)
	}
	<-d.exited
}

func (d *daemonProc) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v to the daemon: %v", sig, err)
	}
}

func (d *daemonProc) log() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// cliResult is what one run of the nixs3q CLI produced.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs `nixs3q ARGS... --socket SOCKET` style commands (the socket flag
// is inserted after the subcommand) and returns their output and exit code.
func cli(t *testing.T, ctx context.Context, socket string, args ...string) cliResult {
	t.Helper()
	return runCLI(t, ctx, nil, append([]string{args[0], "--socket", socket}, args[1:]...)...)
}

// push queues paths with `nixs3q push` and requires success.
func push(t *testing.T, ctx context.Context, socket string, paths ...string) {
	t.Helper()
	r := cli(t, ctx, socket, append([]string{"push"}, paths...)...)
	if r.code != 0 {
		t.Fatalf("nixs3q push: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
}

// waitDrained runs `nixs3q wait` and requires exit 0 (queue drained, no
// failures).
func waitDrained(t *testing.T, ctx context.Context, socket string, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	r := cli(t, ctx, socket, "wait", "--timeout", timeout.String())
	if r.code != 0 {
		t.Fatalf("nixs3q wait: exit %d after %s: %s%s", r.code, time.Since(start).Round(time.Millisecond), r.stdout, r.stderr)
	}
	t.Logf("nixs3q wait: drained after %s", time.Since(start).Round(time.Millisecond))
}

// daemonStatus mirrors the documented keys of `nixs3q status --json`.
type daemonStatus struct {
	Store         string `json:"store"`
	Pending       int    `json:"pending"`
	InFlight      int    `json:"in_flight"`
	Failed        int    `json:"failed"`
	Uploaded      int64  `json:"uploaded"`
	UploadedBytes int64  `json:"uploaded_bytes"`
	Skipped       int64  `json:"skipped"`
	Dropped       int64  `json:"dropped"`
	Completed     int64  `json:"completed"`
	Failures      []struct {
		Path      string `json:"path"`
		Attempts  int    `json:"attempts"`
		LastError string `json:"last_error"`
	} `json:"failures"`
	Uploading []json.RawMessage `json:"uploading"`
}

// status runs `nixs3q status --json` and decodes it; every documented key
// must be present.
func status(t *testing.T, ctx context.Context, socket string) daemonStatus {
	t.Helper()
	r := cli(t, ctx, socket, "status", "--json")
	if r.code != 0 {
		t.Fatalf("nixs3q status --json: exit %d: %s", r.code, r.stderr)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &keys); err != nil {
		t.Fatalf("nixs3q status --json: %v\n%s", err, r.stdout)
	}
	for _, k := range []string{"pending", "in_flight", "failed", "uploaded", "uploaded_bytes", "skipped", "dropped", "completed", "failures", "uploading"} {
		if _, ok := keys[k]; !ok {
			t.Fatalf("nixs3q status --json lacks key %q:\n%s", k, r.stdout)
		}
	}
	var st daemonStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("nixs3q status --json: %v\n%s", err, r.stdout)
	}
	return st
}

// fullStatus holds the counters of `nixs3q status --json` that the filter
// and build scenarios read.
type fullStatus struct {
	daemonStatus
	Excluded     int64 `json:"excluded"`
	HeldBack     int64 `json:"held_back"`
	Realisations int64 `json:"realisations"`
	Logs         int64 `json:"logs"`
}

// statusFull is status with the filter and build counters.
func statusFull(t *testing.T, ctx context.Context, socket string) fullStatus {
	t.Helper()
	status(t, ctx, socket) // checks the documented keys
	r := cli(t, ctx, socket, "status", "--json")
	var st fullStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("nixs3q status --json: %v\n%s", err, r.stdout)
	}
	return st
}

// hookRun is one run of nixs3q-hook.
type hookRun struct {
	took   time.Duration
	stderr string
}

// runHook runs the hook binary as Nix would, with OUT_PATHS set, and
// requires exit 0 (the hook must never fail a build).
func runHook(t *testing.T, socket, stateDir string, outPaths []string) hookRun {
	t.Helper()
	cmd := exec.Command(bin.hook)
	cmd.Env = append(os.Environ(),
		"OUT_PATHS="+strings.Join(outPaths, " "),
		"DRV_PATH=",
		"NIXS3Q_SOCKET="+socket,
		"NIXS3Q_STATE_DIR="+stateDir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("nixs3q-hook failed (it must always exit 0): %v\n%s", err, stderr.String())
	}
	return hookRun{took: took, stderr: stderr.String()}
}

// spoolFiles lists the complete spool files in a state directory.
func spoolFiles(t *testing.T, stateDir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(stateDir, "spool", "*.paths"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// timed logs how long a step took when the returned function is called.
func timed(t *testing.T, step string) func() {
	t.Helper()
	start := time.Now()
	return func() {
		t.Helper()
		t.Logf("timing: %s took %s", step, time.Since(start).Round(time.Millisecond))
	}
}
