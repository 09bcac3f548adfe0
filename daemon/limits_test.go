package daemon

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/queue"
)

// The helper modes the test binary runs in, as another user, when
// NIXS3Q_TEST_HELPER is set (see TestHelperProcess).
const helperEnv = "NIXS3Q_TEST_HELPER"

// TestHelperProcess is not a test: run by runAsNobody as another user, it
// acts on the socket named in NIXS3Q_TEST_SOCKET and prints one JSON
// result line.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	sock := os.Getenv("NIXS3Q_TEST_SOCKET")
	n, _ := strconv.Atoi(os.Getenv("NIXS3Q_TEST_N"))
	res := map[string]int{}
	switch mode {
	case "hold":
		// Open n connections at once, ask each for the status, count the
		// answers, and hold them all until stdin closes.
		var conns []net.Conn
		for range n {
			c, err := net.Dial("unix", sock)
			if err != nil {
				res["dial_error"]++
				continue
			}
			conns = append(conns, c)
			fmt.Fprintf(c, `{"v":%d,"op":"ping"}`+"\n", hook.Version)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var resp struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			line, err := bufio.NewReader(c).ReadBytes('\n')
			if err != nil || json.Unmarshal(line, &resp) != nil {
				res["no_answer"]++
				continue
			}
			if resp.OK {
				res["ok"]++
			} else if strings.Contains(resp.Error, "too many connections") {
				res["refused"]++
			} else {
				res["other"]++
			}
		}
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
		io.Copy(io.Discard, os.Stdin)
		for _, c := range conns {
			c.Close()
		}
		os.Exit(0)
	case "longline":
		// Send a line far over the status-only limit, without a newline,
		// and report what came back and how much was written.
		c, err := net.Dial("unix", sock)
		if err != nil {
			os.Exit(3)
		}
		done := make(chan int64, 1)
		go func() {
			chunk := []byte(strings.Repeat("x", 64<<10))
			var w int64
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			for w < 4<<20 {
				m, err := c.Write(chunk)
				w += int64(m)
				if err != nil {
					break
				}
			}
			done <- w
		}()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadBytes('\n')
		if strings.Contains(string(line), "message exceeds 4096 bytes") {
			res["limited"] = 1
		}
		c.Close()
		res["written"] = int(<-done)
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
		os.Exit(0)
	case "pipeline":
		// Send n enqueue requests in one write, which this user may not
		// make, and count the refusals.
		c, err := net.Dial("unix", sock)
		if err != nil {
			os.Exit(3)
		}
		var b strings.Builder
		for range n {
			fmt.Fprintf(&b, `{"v":%d,"op":"enqueue","paths":["/nix/store/x"]}`+"\n", hook.Version)
		}
		go c.Write([]byte(b.String()))
		r := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		for range n {
			line, err := r.ReadBytes('\n')
			if err != nil {
				break
			}
			if strings.Contains(string(line), "permission denied") {
				res["denied"]++
			}
		}
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
		os.Exit(0)
	}
	os.Exit(2)
}

// helper is a copy of the test binary that any user may run.
var (
	helperOnce sync.Once
	helperBin  string
	helperErr  error
)

func helperBinary(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nixs3q-helper-")
		if err != nil {
			helperErr = err
			return
		}
		os.Chmod(dir, 0o755)
		self, err := os.ReadFile("/proc/self/exe")
		if err != nil {
			helperErr = err
			return
		}
		helperBin = filepath.Join(dir, "helper")
		helperErr = os.WriteFile(helperBin, self, 0o755)
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperBin
}

// runAsNobody starts the test binary as user nobody in the given helper
// mode. The caller reads its result line and closes stdin to end it.
func runAsNobody(t *testing.T, mode, sock string, n int) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(helperBinary(t), "-test.run=^TestHelperProcess$")
	cmd.Env = []string{helperEnv + "=" + mode, "NIXS3Q_TEST_SOCKET=" + sock, "NIXS3Q_TEST_N=" + strconv.Itoa(n)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	return cmd, stdin, bufio.NewReader(stdout)
}

func readResult(t *testing.T, r *bufio.Reader) map[string]int {
	t.Helper()
	line, err := r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("helper result: %v", err)
	}
	res := map[string]int{}
	if err := json.Unmarshal(line, &res); err != nil {
		t.Fatalf("helper result %q: %v", line, err)
	}
	return res
}

// startShared starts a daemon whose socket other users may open (mode
// 0666 in a 0755 directory), as a socket unit may configure it.
func startShared(t *testing.T, opts ...option) *env {
	t.Helper()
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "nixs3q-shared-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	e := start(t, &fakeUploader{}, append([]option{func(c *Config, _ *queue.Config) { c.Socket = sock }}, opts...)...)
	e.socket = sock
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	return e
}

// One unprivileged user cannot hold more than MaxConnsPerUID connections:
// the rest are refused at once, with a reply, and logged at most once a
// second; root still gets served.
func TestConnectionLimitPerUID(t *testing.T) {
	e := startShared(t, func(c *Config, _ *queue.Config) { c.MaxConnsPerUID = 5; c.MaxConns = 50 })
	_, stdin, out := runAsNobody(t, "hold", e.socket, 40)
	res := readResult(t, out)
	if res["ok"] != 5 || res["refused"] != 35 {
		t.Errorf("as nobody, 40 connections: %v; want 5 served, 35 refused", res)
	}
	p := e.storePath("root-path")
	if _, err := e.enqueue(p); err != nil {
		t.Errorf("root refused while nobody holds its limit: %v", err)
	}
	if n := len(e.logs.FilterMessageSnippet("connection limit reached").All()); n > 2 {
		t.Errorf("%d log lines for 35 refused connections, want at most 2", n)
	}
	stdin.Close()
	// The slots are freed when the connections close: a new round gets
	// its five again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, out := runAsNobody(t, "hold", e.socket, 5)
		res := readResult(t, out)
		if res["ok"] == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots of nobody not freed after its connections closed: %v", res)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A peer that may only read the status gets an error after 4 KiB of a
// line, long before it could send 4 MiB.
func TestStatusPeerLineLimit(t *testing.T) {
	e := startShared(t)
	_, _, out := runAsNobody(t, "longline", e.socket, 0)
	res := readResult(t, out)
	if res["limited"] != 1 || res["written"] >= 4<<20 {
		t.Errorf("status-only peer sending a long line: %v; want the limit reply before 4 MiB were taken", res)
	}
}

// 2,000 pipelined requests this user may not make get 2,000 refusals but
// only a line or two in the log.
func TestRefusalLogRateLimited(t *testing.T) {
	e := startShared(t)
	_, _, out := runAsNobody(t, "pipeline", e.socket, 2000)
	res := readResult(t, out)
	if res["denied"] != 2000 {
		t.Errorf("refusals: %v, want 2000", res)
	}
	if n := len(e.logs.FilterMessageSnippet("refused request").All()); n < 1 || n > 3 {
		t.Errorf("%d log lines for 2000 refusals, want 1 to 3", n)
	}
}

// A request whose line trickles in byte by byte is cut off after
// RequestTimeout from its first byte, however active the peer is.
func TestWholeRequestDeadline(t *testing.T) {
	e := start(t, &fakeUploader{}, func(c *Config, _ *queue.Config) { c.RequestTimeout = 300 * time.Millisecond })
	c, err := net.Dial("unix", e.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c)
		close(closed)
	}()
	for {
		if _, err := c.Write([]byte(" ")); err != nil {
			break
		}
		select {
		case <-closed:
		case <-time.After(50 * time.Millisecond):
			if time.Since(start) < 5*time.Second {
				continue
			}
		}
		break
	}
	<-closed
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("trickling request held its connection for %v with a 300ms request timeout", took)
	}
}

// 100 refusals of one kind in a burst make one log line; the next one,
// a second later, says how many were held back.
func TestEventLogRateLimited(t *testing.T) {
	obs, logs := observer.New(zapcore.DebugLevel)
	l := newEventLog(zap.New(obs))
	for range 100 {
		l.report(hook.Event{Kind: hook.EventDenied, Op: "enqueue"})
		l.report(hook.Event{Kind: hook.EventConnLimit})
	}
	if n := logs.Len(); n != 2 {
		t.Fatalf("%d log lines for 100 refusals of each of two kinds, want 2", n)
	}
	time.Sleep(1100 * time.Millisecond)
	l.report(hook.Event{Kind: hook.EventDenied, Op: "enqueue"})
	last := logs.All()[logs.Len()-1]
	if last.ContextMap()["suppressed"] != int64(99) {
		t.Errorf("line after the burst: %v, want suppressed=99", last.ContextMap())
	}
}
