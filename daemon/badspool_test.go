package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/queue"
)

// startWithSpool starts a daemon whose state directory already holds the
// spool files that setup makes in spool.
func startWithSpool(t *testing.T, setup func(storeDir, spool string)) *env {
	t.Helper()
	base := t.TempDir()
	storeDir := filepath.Join(base, "store")
	stateDir := filepath.Join(base, "state")
	spool := hook.SpoolDir(stateDir)
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(storeDir, 0o755)
	setup(storeDir, spool)
	e := start(t, &fakeUploader{}, func(c *Config, _ *queue.Config) { c.StoreDir = storeDir; c.StateDir = stateDir })
	e.storeDir, e.stateDir = storeDir, stateDir
	return e
}

func storeFile(t *testing.T, storeDir, name string) string {
	t.Helper()
	p := filepath.Join(storeDir, strings.Repeat("3", 32)+"-"+name)
	if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Spool files that cannot be read — a 70,001-byte line, a file over the
// 16 MiB limit, a symbolic link, a FIFO — are moved to spool/bad/ after one
// attempt, logged once each, counted in status, and no longer count as
// spooled, so `nixs3q wait` returns. None of the paths of the oversized
// file is queued: it is refused whole, not truncated. A good file beside
// them is ingested.
func TestBadSpoolFilesMovedAside(t *testing.T) {
	var good, inBig string
	e := startWithSpool(t, func(storeDir, spool string) {
		good = storeFile(t, storeDir, "good")
		inBig = storeFile(t, storeDir, "in-big")
		write := func(name, content string) {
			if err := os.WriteFile(filepath.Join(spool, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		write("1-longline.paths", strings.Repeat("x", 70_001)+"\n")
		var big strings.Builder
		big.WriteString(inBig + "\n")
		for big.Len() <= 16<<20 {
			big.WriteString(strings.Repeat("y", 1000) + "\n")
		}
		write("2-big.paths", big.String())
		if err := os.Symlink("/etc/passwd", filepath.Join(spool, "3-link.paths")); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(spool, "4-fifo.paths"), 0o600); err != nil {
			t.Fatal(err)
		}
		write("5-good.paths", good+"\n")
	})
	st := e.waitFor("bad spool files moved aside", func(s *hook.Status) bool {
		return s.Spooled == 0 && s.SpoolBad == 4 && s.Completed == 1
	})
	if st.Pending != 0 || e.up.count(inBig) != 0 {
		t.Errorf("a path of the oversized file was queued: %+v", st)
	}
	bad, _ := os.ReadDir(hook.BadSpoolDir(hook.SpoolDir(e.stateDir)))
	if len(bad) != 4 {
		t.Errorf("spool/bad holds %d entries, want 4", len(bad))
	}
	// Several more scans: each bad file was logged once.
	time.Sleep(10 * e.d.cfg.SpoolInterval)
	moved := e.logs.FilterMessageSnippet("unreadable spool file").All()
	if len(moved) != 4 {
		t.Errorf("%d log lines about unreadable spool files, want 4 (one each)", len(moved))
	}
	for _, l := range moved {
		if strings.Contains(l.ContextMap()["file"].(string), "2-big") &&
			!strings.Contains(l.ContextMap()["error"].(string), "size limit") {
			t.Errorf("oversized file logged as %v", l.ContextMap())
		}
	}
}

// A spool directory writable by group or others is not read (anyone could
// plant paths there), and that is logged once; the hook refuses to write
// into it.
func TestSpoolDirWritableByOthersRefused(t *testing.T) {
	var p string
	e := startWithSpool(t, func(storeDir, spool string) {
		p = storeFile(t, storeDir, "planted")
		if err := os.WriteFile(filepath.Join(spool, "1.paths"), []byte(p+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(spool, 0o777); err != nil {
			t.Fatal(err)
		}
	})
	time.Sleep(10 * e.d.cfg.SpoolInterval)
	if n := e.up.count(p); n != 0 {
		t.Fatal("a path from a world-writable spool directory was uploaded")
	}
	if n := len(e.logs.FilterMessage("not reading the spool").All()); n != 1 {
		t.Errorf("refusal logged %d times, want once", n)
	}
	if _, err := hook.WriteSpool(hook.SpoolDir(e.stateDir), []string{p}); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("hook wrote into a world-writable spool directory: %v", err)
	}
	// Status says why the spool file is not read, and a wait for its path
	// ends at once, naming the problem, instead of waiting for a spool
	// file that will never be read.
	if st := e.status(); !strings.Contains(st.SpoolProblem, "writable by group or others") {
		t.Errorf("status spool_problem %q, want the reason the spool is not read", st.SpoolProblem)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, err := e.client().Wait(ctx, hook.WaitRequest{Paths: []string{p}, Hold: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !ws.Done || len(ws.Paths) != 1 || ws.Paths[0].State != hook.WaitUnknown || !strings.Contains(ws.Paths[0].Reason, "writable by group or others") {
		t.Errorf("wait for a path in an unread spool: %+v, want done, unknown, with the spool's problem", ws)
	}
	// Fixed: read at the next scan.
	if err := os.Chmod(hook.SpoolDir(e.stateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the spool read once fixed", func(s *hook.Status) bool { return s.Completed == 1 })
}

// A spool file owned by a user other than root and the daemon's is moved
// aside, not read.
func TestSpoolFileOfOtherUserRefused(t *testing.T) {
	testenv.RequireRoot(t)
	var p string
	e := startWithSpool(t, func(storeDir, spool string) {
		p = storeFile(t, storeDir, "foreign")
		f := filepath.Join(spool, "1.paths")
		if err := os.WriteFile(f, []byte(p+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f, 4242, 4242); err != nil {
			t.Fatal(err)
		}
	})
	e.waitFor("the foreign file moved aside", func(s *hook.Status) bool { return s.SpoolBad == 1 && s.Spooled == 0 })
	if e.up.count(p) != 0 {
		t.Error("a path from another user's spool file was uploaded")
	}
	if l := e.logs.FilterMessageSnippet("unreadable spool file").All(); len(l) != 1 || !strings.Contains(l[0].ContextMap()["error"].(string), "uid 4242") {
		t.Errorf("log: %v", l)
	}
}
