package hook

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DRV_PATH naming a FIFO, a symbolic link, a directory or a file outside
// the store gives a one-line message at once; the hook never blocks on it.
func TestRunDrvPathRefusals(t *testing.T) {
	sock, got := fakeDaemon(t, func(request) response { return response{OK: true} })
	store := t.TempDir()
	fifo := filepath.Join(store, "fifo.drv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(store, "real.drv")
	os.WriteFile(real, []byte(`Derive([("out","/nix/store/o-x","","")],[],[],"x","/bin/sh",[],[])`), 0o644)
	link := filepath.Join(store, "link.drv")
	os.Symlink(real, link)
	dir := filepath.Join(store, "dir.drv")
	os.Mkdir(dir, 0o755)
	outside := filepath.Join(t.TempDir(), "outside.drv")
	os.WriteFile(outside, []byte(`Derive([("out","/nix/store/o-x","","")],[],[],"x","/bin/sh",[],[])`), 0o644)
	for _, tc := range []struct{ path, want string }{
		{fifo, "not a regular file"},
		{link, "symbolic link"},
		{dir, "not a regular file"},
		{outside, "not a .drv file directly in"},
		{filepath.Join(store, "sub", "x.drv"), "not a .drv file directly in"},
	} {
		start := time.Now()
		out := Run(context.Background(), Config{Socket: sock, StateDir: t.TempDir(), DrvPath: tc.path,
			StoreDir: store, Timeout: time.Second})
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("%s: hook took %v", tc.path, took)
		}
		if out.Queued || !strings.Contains(out.Message, tc.want) || strings.Contains(out.Message, "\n") {
			t.Errorf("%s: outcome %+v, want a message with %q", tc.path, out, tc.want)
		}
	}
	if len(*got) != 0 {
		t.Errorf("daemon was sent %+v", *got)
	}
}

// A spool write that stalls (a hung disk) does not hold the build: the
// hook gives up after SpoolTimeout and says the paths were not queued.
func TestRunSpoolWriteHasDeadline(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	writeSpool = func(dir string, paths []string) (string, error) {
		<-block
		return "", nil
	}
	defer func() { writeSpool = WriteSpool }()
	state := t.TempDir()
	start := time.Now()
	out := Run(context.Background(), Config{Socket: filepath.Join(state, "none.sock"), StateDir: state,
		OutPaths: "/nix/store/a-x", Timeout: 200 * time.Millisecond, SpoolTimeout: 300 * time.Millisecond})
	if took := time.Since(start); took > time.Second {
		t.Fatalf("hook took %v with a stalled spool write", took)
	}
	if out.Spooled != "" || !strings.Contains(out.Message, "did not finish in time") || !strings.Contains(out.Message, "not queued") {
		t.Fatalf("outcome %+v", out)
	}
}
