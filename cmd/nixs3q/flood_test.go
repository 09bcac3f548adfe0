package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/internal/testenv"
)

// floodEnv makes the test binary, run as another user, flood a socket
// instead of running tests (see TestMain).
const floodEnv = "NIXS3Q_TEST_FLOOD_SOCKET"

// flood opens 100 connections that each send a 4 MB line without a
// newline and 1,000 idle connections, all at once, prints how many the
// daemon kept open, and holds them until stdin closes.
func flood(sock string) {
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			c, err := net.Dial("unix", sock)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			chunk := []byte(strings.Repeat("x", 64<<10))
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			for w := 0; w < 4<<20; w += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		})
	}
	for range 1000 {
		if c, err := net.Dial("unix", sock); err == nil {
			conns = append(conns, c)
		}
	}
	wg.Wait()
	// A connection the daemon refused or cut off reads EOF at once.
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Read(make([]byte, 4096)); err != nil && os.IsTimeout(err) {
			open++
		}
	}
	fmt.Printf("{\"opened\":%d,\"still_open\":%d}\n", len(conns), open)
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

func vmKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestDaemonMemoryUnderConnectionFlood runs the real daemon (built without
// the race detector, as shipped) and floods it as an unprivileged user with
// 100 connections sending 4 MB lines and 1,000 idle connections, while root
// holds 500 idle connections too. The daemon's peak RSS stays under
// 100 MiB, and hooks still get their acknowledgement within normal latency.
func TestDaemonMemoryUnderConnectionFlood(t *testing.T) {
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "nixs3q-flood-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "nixs3q")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	flooder := filepath.Join(dir, "flooder")
	if err := os.WriteFile(flooder, self, 0o755); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	os.Mkdir(store, 0o755)
	var paths []string
	for i := range 30 {
		p := filepath.Join(store, fmt.Sprintf("%032d-hook%d", i, i))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	keyFile, _ := writeKey(t, dir)
	sock := filepath.Join(dir, "run", "d.sock")
	cmd := exec.Command(bin, "daemon", "--store", "file://"+filepath.Join(dir, "cache"), "--secret-key-file", keyFile,
		"--state-dir", filepath.Join(dir, "state"), "--socket", sock, "--store-dir", store, "--nix", "/bin/false",
		"--log-format", "json", "--log-level", "warn")
	var logs syncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("daemon log (last 4 KiB):\n%s", tail(logs.String(), 4096))
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not serving:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let every local user open the socket, as a socket unit may.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid

	hookLatency := func(ps []string) []time.Duration {
		var ds []time.Duration
		for _, p := range ps {
			start := time.Now()
			out := hook.Run(context.Background(), hook.Config{Socket: sock, StateDir: filepath.Join(dir, "state"), OutPaths: p})
			ds = append(ds, time.Since(start))
			if !out.Queued {
				t.Errorf("hook for %s not acknowledged: %+v", p, out)
			}
		}
		slices.Sort(ds)
		return ds
	}
	before := hookLatency(paths[:10])
	baseRSS := vmKiB(t, pid, "VmRSS")

	var rootConns []net.Conn
	defer func() {
		for _, c := range rootConns {
			c.Close()
		}
	}()
	for range 500 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("root connection %d: %v", len(rootConns), err)
		}
		rootConns = append(rootConns, c)
	}
	fl := exec.Command(flooder)
	fl.Env = []string{floodEnv + "=" + sock}
	fl.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	fl.Stderr = os.Stderr
	stdin, _ := fl.StdinPipe()
	stdout, _ := fl.StdoutPipe()
	if err := fl.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		fl.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("flooder: %v", err)
	}
	var res struct{ Opened, StillOpen int }
	json.Unmarshal(line, &res)
	during := hookLatency(paths[10:])
	rss, hwm := vmKiB(t, pid, "VmRSS"), vmKiB(t, pid, "VmHWM")
	t.Logf("flood: %d connections opened, %d kept by the daemon; RSS %d KiB before, %d KiB after, peak %d KiB",
		res.Opened, res.StillOpen, baseRSS, rss, hwm)
	t.Logf("hook latency before: median %v, max %v; during: median %v, max %v",
		before[len(before)/2], before[len(before)-1], during[len(during)/2], during[len(during)-1])
	if hwm > 100<<10 {
		t.Errorf("peak RSS %d KiB, want under 100 MiB", hwm)
	}
	if res.StillOpen > 32 {
		t.Errorf("the daemon kept %d connections of one unprivileged user open, limit 32", res.StillOpen)
	}
	if max := during[len(during)-1]; max > 250*time.Millisecond && max > 10*before[len(before)-1] {
		t.Errorf("hook latency during the flood up to %v (before: %v)", max, before[len(before)-1])
	}
	if n := strings.Count(logs.String(), "connection limit reached"); n > 5 {
		t.Errorf("%d log lines about the connection limit, want them rate-limited", n)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
