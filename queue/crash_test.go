package queue

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

const crashHelperEnv = "NIXS3Q_QUEUE_CRASH_HELPER_DB"

// TestHelperProcess is not a test on its own: TestCrashKill runs the test
// binary again with crashHelperEnv set, and this function then enqueues
// paths from several goroutines forever, printing "ack <paths>" after each
// acknowledged Enqueue and "leased <paths>" after each Claim, until the
// parent kills it.
func TestHelperProcess(t *testing.T) {
	dbPath := os.Getenv(crashHelperEnv)
	if dbPath == "" {
		t.Skip("helper process of TestCrashKill")
	}
	q, err := Open(Config{Path: dbPath}, zap.NewNop())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var outMu sync.Mutex
	emit := func(kind string, paths []string) {
		outMu.Lock()
		defer outMu.Unlock()
		// One write per line, so a kill never leaves half a line behind
		// that looks complete.
		if _, err := os.Stdout.WriteString(kind + " " + strings.Join(paths, " ") + "\n"); err != nil {
			os.Exit(4)
		}
	}
	for g := range 4 {
		go func() {
			for i := 0; ; i++ {
				paths := []string{
					fmt.Sprintf("/nix/store/g%d-%06d-out", g, i),
					fmt.Sprintf("/nix/store/g%d-%06d-dev", g, i),
				}
				if _, err := q.Enqueue(context.Background(), paths); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				emit("ack", paths)
			}
		}()
	}
	for {
		items, err := q.Claim(3)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		var paths []string
		for _, it := range items {
			paths = append(paths, it.Path)
		}
		if len(paths) > 0 {
			emit("leased", paths)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestCrashKill kills a process in the middle of enqueueing and claiming
// and checks that every acknowledged path survived and that leases came
// back as pending.
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dbPath := filepath.Join(t.TempDir(), "queue.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+dbPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			if err != nil { // io.EOF after the kill; a partial line is dropped
				return
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()

	acked, leased := map[string]bool{}, map[string]bool{}
	record := func(line string) {
		kind, rest, _ := strings.Cut(line, " ")
		for _, p := range strings.Fields(rest) {
			switch kind {
			case "ack":
				acked[p] = true
			case "leased":
				leased[p] = true
			}
		}
	}
	deadline := time.After(60 * time.Second)
	for len(acked) < 400 || len(leased) < 6 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("helper exited early: %v\n%s", cmd.Wait(), stderr.String())
			}
			record(line)
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("helper made too little progress: %d acked, %d leased\n%s", len(acked), len(leased), stderr.String())
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for line := range lines { // everything written before the kill was acknowledged
		record(line)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("helper exit %v, want killed\n%s", err, stderr.String())
	}
	_, _ = io.Copy(io.Discard, stdout)

	q := openTest(t, Config{Path: dbPath})
	if err := q.Check(); err != nil {
		t.Fatalf("after kill -9: %v", err)
	}
	s := mustStats(t, q)
	if s.Leased != 0 {
		t.Errorf("%d items still leased after reopen", s.Leased)
	}
	for p := range acked {
		it, ok, err := q.Get(p)
		if err != nil || !ok || it.State != Pending {
			t.Fatalf("acknowledged %s lost or wrong after kill -9: ok=%v err=%v item=%+v", p, ok, err, it)
		}
	}
	for p := range leased {
		if it, ok, _ := q.Get(p); !ok || it.State != Pending || it.Attempts != 0 {
			t.Errorf("leased %s after reopen: ok=%v %+v, want pending", p, ok, it)
		}
	}
	if s.Pending < len(acked) {
		t.Errorf("%d pending, fewer than the %d acknowledged", s.Pending, len(acked))
	}
	t.Logf("%d acknowledged paths and %d leases survived kill -9 (%d pending after reopen)", len(acked), len(leased), s.Pending)
}
