package hook

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

func TestParseDrvOutputs(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{"single", `Derive([("out","/nix/store/aaa-x","","")],[],[],"x86_64-linux","/bin/sh",[],[])`, []string{"/nix/store/aaa-x"}, false},
		{"multi", `Derive([("dev","/nix/store/b-x-dev","",""),("out","/nix/store/a-x","","")],[],[])`, []string{"/nix/store/b-x-dev", "/nix/store/a-x"}, false},
		{"fixed output", `Derive([("out","/nix/store/f-src","r:sha256","0abc")],[])`, []string{"/nix/store/f-src"}, false},
		{"ca floating, no path", `Derive([("out","","r:sha256","")],[])`, nil, false},
		{"escapes", `Derive([("out","/nix/store/a-\"q\\","","")])`, []string{`/nix/store/a-"q\`}, false},
		{"empty list", `Derive([],[])`, nil, false},
		{"not aterm", `{"out": "/nix/store/x"}`, nil, true},
		{"truncated", `Derive([("out","/nix/st`, nil, true},
		{"three fields", `Derive([("out","/nix/store/a","")])`, nil, true},
		{"empty file", ``, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDrvOutputs(bufio.NewReader(strings.NewReader(tt.in)))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSpoolRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	first, err := WriteSpool(dir, []string{"/nix/store/a-x", "/nix/store/b-y"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	if _, err := WriteSpool(dir, []string{"/nix/store/c-z"}); err != nil {
		t.Fatal(err)
	}
	// A writer that died before its rename leaves a temporary file, which is
	// not a spool entry.
	if err := os.WriteFile(filepath.Join(dir, tmpPrefix+"dead"), []byte("/nix/store/d-w\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files, err := ListSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0] != first {
		t.Fatalf("ListSpool = %v, want 2 files, oldest %s first", files, first)
	}
	var all []string
	for _, f := range files {
		p, err := ReadSpool(f, os.Geteuid())
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p...)
	}
	if got := strings.Join(all, " "); got != "/nix/store/a-x /nix/store/b-y /nix/store/c-z" {
		t.Fatalf("paths = %q", got)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	if _, err := WriteSpool(dir, []string{"/nix/store/a\nb"}); err == nil {
		t.Fatal("a path with a newline was spooled")
	}
	if files2, _ := ListSpool(dir); len(files2) != 2 {
		t.Fatalf("a refused spool write left a file: %v", files2)
	}
	if files, err := ListSpool(filepath.Join(dir, "missing")); err != nil || len(files) != 0 {
		t.Fatalf("missing spool dir: %v, %v", files, err)
	}
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReaderSize(strings.NewReader("short\n"+strings.Repeat("x", 100)+"\nnoend"), 16)
	if b, err := readLine(r, 50); err != nil || string(b) != "short" {
		t.Fatalf("got %q, %v", b, err)
	}
	if _, err := readLine(r, 50); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("long line: err = %v, want ErrTooLarge", err)
	}
	r = bufio.NewReader(strings.NewReader("noend"))
	if _, err := readLine(r, 50); err == nil {
		t.Fatal("a line without newline was accepted")
	}
}

// stubDaemon accepts connections on a fresh socket and hands each to
// handle, until the test ends; then it closes them.
func stubDaemon(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "stub.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			handle(c)
		}
	}()
	return sock
}

// fakeDaemon answers requests with the given function and records them.
func fakeDaemon(t *testing.T, answer func(request) response) (string, *[]request) {
	t.Helper()
	var mu sync.Mutex
	var got []request
	sock := stubDaemon(t, func(c net.Conn) {
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := readLine(r, MaxMessageSize)
				if err != nil {
					return
				}
				var req request
				if err := json.Unmarshal(line, &req); err != nil {
					return
				}
				mu.Lock()
				got = append(got, req)
				mu.Unlock()
				b, _ := encodeLine(answer(req))
				c.Write(b)
			}
		}()
	})
	return sock, &got
}

func TestRunQueued(t *testing.T) {
	sock, got := fakeDaemon(t, func(request) response { return response{OK: true, Added: 2} })
	state := t.TempDir()
	out := Run(context.Background(), Config{Socket: sock, StateDir: state, OutPaths: " /nix/store/a-x  /nix/store/b-y "})
	if !out.Queued || out.Message != "" || out.Spooled != "" {
		t.Fatalf("outcome = %+v", out)
	}
	if len(*got) != 1 || (*got)[0].Op != opEnqueue || len((*got)[0].Paths) != 2 || (*got)[0].Version != Version {
		t.Fatalf("daemon saw %+v", *got)
	}
	if files, _ := ListSpool(SpoolDir(state)); len(files) != 0 {
		t.Fatalf("spooled although the daemon acknowledged: %v", files)
	}
}

func TestRunReadsDrvWhenOutPathsEmpty(t *testing.T) {
	sock, got := fakeDaemon(t, func(request) response { return response{OK: true} })
	store := t.TempDir()
	drv := filepath.Join(store, "x.drv")
	os.WriteFile(drv, []byte(`Derive([("dev","/nix/store/d-x-dev","",""),("out","/nix/store/o-x","","")],[],[],"x","/bin/sh",[],[])`), 0o644)
	out := Run(context.Background(), Config{Socket: sock, StateDir: t.TempDir(), DrvPath: drv, StoreDir: store})
	if !out.Queued {
		t.Fatalf("outcome = %+v", out)
	}
	if p := (*got)[0].Paths; len(p) != 2 || p[0] != "/nix/store/d-x-dev" || p[1] != "/nix/store/o-x" || (*got)[0].Drv != drv {
		t.Fatalf("daemon saw %+v", (*got)[0])
	}
}

func TestRunDaemonDownSpools(t *testing.T) {
	state := t.TempDir()
	start := time.Now()
	out := Run(context.Background(), Config{Socket: filepath.Join(state, "none.sock"), StateDir: state, OutPaths: "/nix/store/a-x"})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("hook took %v with the daemon down", took)
	}
	if out.Queued || out.Spooled == "" || strings.Count(out.Message, "\n") != 0 || !strings.Contains(out.Message, "spooled") {
		t.Fatalf("outcome = %+v", out)
	}
	paths, err := ReadSpool(out.Spooled, os.Geteuid())
	if err != nil || len(paths) != 1 || paths[0] != "/nix/store/a-x" {
		t.Fatalf("spool holds %v, %v", paths, err)
	}
}

// A daemon that accepts but never answers must not hold the build: the hook
// gives up within its timeout and spools.
func TestRunStuckDaemonSpools(t *testing.T) {
	sock := stubDaemon(t, func(net.Conn) {})
	state := t.TempDir()
	start := time.Now()
	out := Run(context.Background(), Config{Socket: sock, StateDir: state, OutPaths: "/nix/store/a-x", Timeout: 300 * time.Millisecond})
	if took := time.Since(start); took > time.Second {
		t.Fatalf("hook took %v against a stuck daemon", took)
	}
	if out.Spooled == "" {
		t.Fatalf("outcome = %+v", out)
	}
}

func TestRunRefusalRetriesValidPaths(t *testing.T) {
	sock, got := fakeDaemon(t, func(r request) response {
		for _, p := range r.Paths {
			if p == "/nix/store/bad" {
				return response{Error: "refused", Refused: []Refusal{{Path: p, Reason: "does not exist"}}}
			}
		}
		return response{OK: true, Added: len(r.Paths)}
	})
	state := t.TempDir()
	out := Run(context.Background(), Config{Socket: sock, StateDir: state, OutPaths: "/nix/store/bad /nix/store/good-x"})
	if out.Spooled != "" || !strings.Contains(out.Message, "does not exist") {
		t.Fatalf("outcome = %+v", out)
	}
	if len(*got) != 2 || len((*got)[1].Paths) != 1 || (*got)[1].Paths[0] != "/nix/store/good-x" {
		t.Fatalf("daemon saw %+v", *got)
	}
}

func TestRunDaemonErrorSpools(t *testing.T) {
	sock, _ := fakeDaemon(t, func(request) response { return response{Error: "shutting down"} })
	state := t.TempDir()
	out := Run(context.Background(), Config{Socket: sock, StateDir: state, OutPaths: "/nix/store/a-x"})
	if out.Spooled == "" || out.Queued {
		t.Fatalf("a daemon error must fall back to the spool: %+v", out)
	}
}

func TestRunNothingToDo(t *testing.T) {
	out := Run(context.Background(), Config{Socket: "/nonexistent", StateDir: t.TempDir()})
	if out.Queued || out.Spooled != "" || out.Message != "" {
		t.Fatalf("outcome = %+v", out)
	}
	out = Run(context.Background(), Config{Socket: "/nonexistent", StateDir: t.TempDir(), DrvPath: "/nonexistent.drv"})
	if out.Message == "" || strings.Contains(out.Message, "\n") {
		t.Fatalf("unreadable drv should give one line: %+v", out)
	}
}

// As root, spool files go to the owner of the state directory (the daemon's
// user), so that the daemon can read and remove what the root-run hook wrote.
func TestSpoolOwnedByStateDirOwner(t *testing.T) {
	testenv.RequireRoot(t)
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, 4321, 4322); err != nil {
		t.Fatal(err)
	}
	f, err := WriteSpool(SpoolDir(state), []string{"/nix/store/a-x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{SpoolDir(state), f} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 4321 || st.Gid != 4322 {
			t.Errorf("%s owned by %d:%d, want 4321:4322", p, st.Uid, st.Gid)
		}
	}
}

// The daemon's user owns the state directory and could replace the spool
// with a symbolic link; the root-run hook must then refuse rather than
// create a root-written file wherever the link points.
func TestSpoolRefusesSymlinkedDirectory(t *testing.T) {
	state := t.TempDir()
	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, SpoolDir(state)); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteSpool(SpoolDir(state), []string{"/nix/store/a-x"}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("spooled through a symlink: err %v", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Fatalf("files created behind the link: %v", entries)
	}
}

// As root, a spool directory owned by someone other than the state
// directory's owner (or root) is refused.
func TestSpoolRefusesForeignOwner(t *testing.T) {
	testenv.RequireRoot(t)
	state := filepath.Join(t.TempDir(), "state")
	os.Mkdir(state, 0o700)
	os.Chown(state, 4321, 4321)
	os.Mkdir(SpoolDir(state), 0o700)
	os.Chown(SpoolDir(state), 999, 999)
	if _, err := WriteSpool(SpoolDir(state), []string{"/nix/store/a-x"}); err == nil || !strings.Contains(err.Error(), "owned by uid 999") {
		t.Fatalf("err %v", err)
	}
}

// A content-addressed derivation lists no output paths and Nix 2.8 passes
// no OUT_PATHS: the hook still sends the derivation, and spools its build
// item when the daemon is down.
func TestRunSendsDerivationWithoutOutputs(t *testing.T) {
	store := t.TempDir()
	drv := filepath.Join(store, "ca.drv")
	os.WriteFile(drv, []byte(`Derive([("out","","r:sha256","")],[],[],"x","/bin/sh",[],[])`), 0o644)
	sock, got := fakeDaemon(t, func(request) response { return response{OK: true, Added: 1} })
	out := Run(context.Background(), Config{Socket: sock, StateDir: t.TempDir(), DrvPath: drv, StoreDir: store})
	if !out.Queued || len(*got) != 1 || len((*got)[0].Paths) != 0 || (*got)[0].Drv != drv {
		t.Fatalf("outcome %+v; daemon saw %+v", out, *got)
	}
	state := t.TempDir()
	out = Run(context.Background(), Config{Socket: filepath.Join(state, "none.sock"), StateDir: state, DrvPath: drv, OutPaths: "/nix/store/a-x", StoreDir: store})
	paths, err := ReadSpool(out.Spooled, os.Geteuid())
	if err != nil || len(paths) != 2 || paths[0] != "/nix/store/a-x" || paths[1] != BuildItem(drv) {
		t.Fatalf("spool holds %v, %v; want the output and the build item", paths, err)
	}
	if d, ok := BuildDrv(paths[1]); !ok || d != drv {
		t.Errorf("BuildDrv(%q) = %q, %v", paths[1], d, ok)
	}
	if _, ok := BuildDrv("/nix/store/a-x"); ok {
		t.Error("a store path taken for a build item")
	}
}
