package daemon

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

// A socket directory that another user could change is refused: writable
// by group or others, a symbolic link, or owned by another user.
func TestSocketDirectoryChecked(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o755)
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := listenSocket(filepath.Join(open, "s.sock"), -1); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("world-writable socket directory: %v", err)
	}
	sticky := filepath.Join(base, "sticky")
	os.Mkdir(sticky, 0o755)
	os.Chmod(sticky, 0o1777)
	if _, err := listenSocket(filepath.Join(sticky, "s.sock"), -1); err == nil {
		t.Error("a /tmp-like socket directory was accepted")
	}
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o755)
	link := filepath.Join(base, "link")
	os.Symlink(real, link)
	if _, err := listenSocket(filepath.Join(link, "s.sock"), -1); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("symlinked socket directory: %v", err)
	}
	testenv.RequireRoot(t)
	foreign := filepath.Join(base, "foreign")
	os.Mkdir(foreign, 0o755)
	if err := os.Chown(foreign, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if _, err := listenSocket(filepath.Join(foreign, "s.sock"), -1); err == nil || !strings.Contains(err.Error(), "uid 4242") {
		t.Errorf("socket directory of another user: %v", err)
	}
}

// The socket gets mode 0660 and its group under a restrictive umask, and
// listenSocket leaves the umask as it was.
func TestSocketModeWithoutUmaskChange(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	gid := os.Getgid()
	l, err := listenSocket(sock, gid)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if now := syscall.Umask(0o077); now != 0o077 {
		t.Errorf("umask changed to %04o", now)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want socket 0660", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid {
		t.Errorf("socket group %d, want %d", st.Gid, gid)
	}
	if l.Addr().String() != sock {
		t.Errorf("listener address %s, want %s", l.Addr(), sock)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("cannot connect to the socket: %v", err)
	}
	c.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("socket directory holds %d entries, want only the socket", len(entries))
	}
	l.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
}

// A live daemon too busy to accept (a full backlog) is not taken for
// stale: only a refused connection is. Its socket stays.
func TestBusySocketNotStale(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "busy.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	// Fill the backlog; it never accepts.
	var fill []net.Conn
	defer func() {
		for _, c := range fill {
			c.Close()
		}
	}()
	for range 8 {
		c, err := net.DialTimeout("unix", sock, 100*time.Millisecond)
		if err != nil {
			break
		}
		fill = append(fill, c)
	}
	_, err = listenSocket(sock, -1)
	if err == nil || !strings.Contains(err.Error(), "cannot tell whether") {
		t.Fatalf("busy live socket: %v", err)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("the live socket was removed: %v", err)
	}
}

// Another process of the daemon's user swapping the socket path for a
// symbolic link to a private file while sockets are set up never changes
// that file's mode: nothing is chmodded through the shared path.
func TestSocketSymlinkRaceCannotChmod(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(target, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		tmp := filepath.Join(dir, "swap")
		for !stop.Load() {
			os.Remove(tmp)
			os.Symlink(target, tmp)
			os.Rename(tmp, sock)
		}
	})
	for range 300 {
		if l, err := listenSocket(sock, os.Getgid()); err == nil {
			l.Close()
		}
	}
	stop.Store(true)
	wg.Wait()
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the racing link changed the target's mode to %04o", fi.Mode().Perm())
	}
}
