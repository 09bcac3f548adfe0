package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nixs3q/nixs3q/hook"
)

// daemonOpts are the flags of one `nixs3q daemon`.
type daemonOpts struct {
	store    string // store URL
	storeDir string // "" for /nix/store
	nix      string // "" for nix from PATH
	workers  int
	extra    []string
}

// daemon is a running `nixs3q daemon` process with its own state directory
// and socket.
type daemon struct {
	cmd      *exec.Cmd
	socket   string
	stateDir string
	logPath  string
	exited   chan struct{}
	waitErr  error
	rusage   *syscall.Rusage
}

// startDaemon starts a daemon with a fresh state directory under dir and
// waits until it answers a ping.
func (e *env) startDaemon(ctx context.Context, dir string, o daemonOpts) (*daemon, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d := &daemon{
		socket:   filepath.Join(dir, "nixs3q.sock"),
		stateDir: filepath.Join(dir, "state"),
		logPath:  filepath.Join(dir, "daemon.log"),
		exited:   make(chan struct{}),
	}
	args := []string{"daemon", "--store", o.store, "--secret-key-file", e.keyFile,
		"--state-dir", d.stateDir, "--socket", d.socket,
		"--log-format", "json", "--log-level", "warn", "--shutdown-grace", "200ms"}
	if o.storeDir != "" {
		args = append(args, "--store-dir", o.storeDir)
	}
	if o.nix != "" {
		args = append(args, "--nix", o.nix)
	}
	if o.workers > 0 {
		args = append(args, "--workers", strconv.Itoa(o.workers))
	}
	args = append(args, o.extra...)
	logFile, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	d.cmd = exec.Command(e.bins.nixs3q, args...)
	d.cmd.Env = e.daemonEnv()
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start daemon: %w", err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		if ru, ok := d.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			d.rusage = ru
		}
		close(d.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := ping(pctx, d.socket)
		cancel()
		if err == nil {
			return d, nil
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("bench: daemon exited before it was ready (%v): %s", d.waitErr, d.logTail())
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("bench: daemon not ready after 30s: %s", d.logTail())
		}
	}
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(bytes.TrimSpace(b))
}

// peakRSS is the daemon's peak resident set size in bytes so far (VmHWM).
func (d *daemon) peakRSS() (int64, error) {
	return vmHWM(d.cmd.Process.Pid)
}

// cpu is the CPU time the daemon process has used so far (not counting
// the nix commands it runs); 0 when unknown.
func (d *daemon) cpu() time.Duration {
	t, err := procCPU(d.cmd.Process.Pid)
	if err != nil {
		return 0
	}
	return t
}

// vmHWM reads a process's peak resident set size from /proc.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bench: VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("bench: no VmHWM in /proc status")
}

// stop sends SIGTERM and waits for the daemon to exit (SIGKILL after 15s).
// It reports an unclean exit.
func (d *daemon) stop() error {
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
			return fmt.Errorf("bench: daemon ignored SIGTERM: %s", d.logTail())
		}
	}
	if d.waitErr != nil {
		return fmt.Errorf("bench: daemon exited with %v: %s", d.waitErr, d.logTail())
	}
	return nil
}

// status asks the daemon for its status.
func (d *daemon) status(ctx context.Context) (*hook.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := hook.Dial(ctx, d.socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: status: %w", err)
	}
	return st, nil
}

// ping checks that the daemon at socket answers.
func ping(ctx context.Context, socket string) error {
	c, err := hook.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Ping(ctx)
}

// pushAndWait times `nixs3q push PATHS` followed by `nixs3q wait`, the way
// an operator uploads by hand, and checks that nothing failed.
func (e *env) pushAndWait(ctx context.Context, d *daemon, paths ...string) (time.Duration, error) {
	start := time.Now()
	if out, err := e.cli(ctx, d, append([]string{"push"}, paths...)...); err != nil {
		return 0, fmt.Errorf("bench: nixs3q push: %w: %s", err, out)
	}
	if out, err := e.cli(ctx, d, "wait", "--interval", waitInterval.String(), "--timeout", "30m"); err != nil {
		return 0, fmt.Errorf("bench: nixs3q wait: %w: %s\ndaemon log: %s", err, out, d.logTail())
	}
	return time.Since(start), nil
}

// waitInterval is how often `nixs3q wait` polls the daemon in the upload
// measures; its default (200ms) would round every timing up by up to that.
const waitInterval = 5 * time.Millisecond

func (e *env) cli(ctx context.Context, d *daemon, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, e.bins.nixs3q, append(args[:1:1], append([]string{"--socket", d.socket}, args[1:]...)...)...)
	return cmd.CombinedOutput()
}
