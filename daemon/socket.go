package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// listenSocket creates the daemon's socket at path with mode 0660 (and group
// gid when gid >= 0), whatever the process umask, which it never changes.
//
// The directory holding it must be a real directory (not a symbolic link)
// owned by root or by the daemon's user and not writable by group or others;
// it is created (0755) when missing. The socket is bound inside a fresh
// private (0700) directory beside path, given its mode and group there, and
// renamed onto path: no chmod or chown ever acts on a path that another
// user could point elsewhere, and path never names the socket with other
// permissions. A stale socket left by a dead daemon (connecting to it is
// refused) is replaced by that rename; a socket some process answers on, or
// one whose state is unclear (permission denied, a full backlog, a
// timeout), or a file that is not a socket, is left alone and reported.
//
// Closing the returned listener removes path if it still names this socket.
func listenSocket(path string, gid int) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("daemon: socket directory: %w", err)
	}
	if err := checkSocketDir(dir); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("daemon: %s exists and is not a socket; refusing to replace it", path)
		}
		c, err := net.DialTimeout("unix", path, 500*time.Millisecond)
		switch {
		case err == nil:
			c.Close()
			return nil, fmt.Errorf("daemon: another process is already serving %s", path)
		case !errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("daemon: cannot tell whether %s is still in use (%w); "+
				"refusing to replace it: stop the process serving it, or remove it", path, err)
		}
	}

	private, err := os.MkdirTemp(dir, ".nixs3q-sock-")
	if err != nil {
		return nil, fmt.Errorf("daemon: socket: %w", err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("daemon: socket: %w", os.NewSyscallError("socket", err))
	}
	f := os.NewFile(uintptr(fd), "socket")
	defer f.Close()
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: tmp}); err != nil {
		return nil, fmt.Errorf("daemon: listen on %s: %w", path, os.NewSyscallError("bind", err))
	}
	// Inside the private directory only this process (and root) can
	// reach the socket, so setting its mode and group by path is safe.
	if err := os.Chmod(tmp, 0o660); err != nil {
		return nil, fmt.Errorf("daemon: socket mode: %w", err)
	}
	if gid >= 0 {
		if err := os.Lchown(tmp, -1, gid); err != nil {
			return nil, fmt.Errorf("daemon: give socket to group %d: %w", gid, err)
		}
	}
	if err := syscall.Listen(fd, listenBacklog()); err != nil {
		return nil, fmt.Errorf("daemon: listen on %s: %w", path, os.NewSyscallError("listen", err))
	}
	fl, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("daemon: listen on %s: %w", path, err)
	}
	ul := fl.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Rename(tmp, path); err != nil {
		ul.Close()
		return nil, fmt.Errorf("daemon: put socket in place at %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ul.Close()
		return nil, fmt.Errorf("daemon: socket: %w", err)
	}
	return &socketListener{UnixListener: ul, path: path, fi: fi}, nil
}

// listenBacklog is the kernel's limit on a listen backlog, as the net
// package uses it for its own listeners (syscall.SOMAXCONN is only 128).
func listenBacklog() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return syscall.SOMAXCONN
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return syscall.SOMAXCONN
	}
	return min(n, 1<<16-1)
}

// checkSocketDir refuses a socket directory that another user could change:
// a symbolic link, a non-directory, one owned by neither root nor the
// daemon's user, or one writable by group or others.
func checkSocketDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("daemon: socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("daemon: socket directory %s is not a directory (%s)", dir, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("daemon: socket directory %s is owned by uid %d, neither root nor this daemon's uid %d", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("daemon: socket directory %s is writable by group or others (mode %04o): chmod 755 it", dir, fi.Mode().Perm())
	}
	return nil
}

// socketListener is the daemon's own socket. Its address is the final
// path, and Close removes that path only while it still names this socket,
// never a successor's.
type socketListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
	once sync.Once
}

func (l *socketListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *socketListener) Close() error {
	l.once.Do(func() {
		if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return l.UnixListener.Close()
}
