package daemon

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/queue"
)

const nobody = 65534

// TestPeerCredentials connects as an unprivileged user through a socket whose
// mode lets anyone in, to show that the daemon's check of the peer's
// credentials, not only the socket's mode, keeps other users out.
func TestPeerCredentials(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to act as another user (the project's test command runs as root)")
	}
	e := start(t, &fakeUploader{})
	p := e.storePath("x")
	// Open the way to the socket for everyone.
	for dir := filepath.Dir(e.socket); dir != "/"; dir = filepath.Dir(dir) {
		if strings.HasPrefix(dir, os.TempDir()) && dir != os.TempDir() {
			os.Chmod(dir, 0o755)
		}
	}
	os.Chmod(e.socket, 0o666)
	os.Chmod(e.storeDir, 0o755)

	bin := filepath.Join(t.TempDir(), "client.test")
	copyFile(t, os.Args[0], bin)
	os.Chmod(filepath.Dir(bin), 0o755)

	run := func(req hook.Request) hook.Response {
		t.Helper()
		b, _ := json.Marshal(req)
		cmd := exec.Command(bin, "-test.run=^TestHelperClient$")
		cmd.Env = append(os.Environ(), "NIXS3Q_HELPER_SOCKET="+e.socket, "NIXS3Q_HELPER_REQ="+string(b))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client as nobody: %v: %s", err, out)
		}
		var resp hook.Response
		first := strings.SplitN(string(out), "\n", 2)[0]
		if err := json.Unmarshal([]byte(first), &resp); err != nil {
			t.Fatalf("client output %q: %v", out, err)
		}
		return resp
	}
	if resp := run(hook.Request{Op: hook.OpEnqueue, Paths: []string{p}}); resp.OK || !strings.Contains(resp.Error, "permission denied") {
		t.Fatalf("nobody could enqueue: %+v", resp)
	}
	if resp := run(hook.Request{Op: hook.OpRetry}); resp.OK {
		t.Fatalf("nobody could retry: %+v", resp)
	}
	if resp := run(hook.Request{Op: hook.OpStatus}); !resp.OK || resp.Status == nil {
		t.Fatalf("nobody could not read status: %+v", resp)
	}
	if st, _ := e.q.Stats(); st.Pending+st.Leased != 0 || st.Completed != 0 {
		t.Fatalf("a refused user changed the queue: %+v", st)
	}
}

// TestPeerCredentialsAllowGroup lets the group in through the socket's group
// ownership, with no world access.
func TestPeerCredentialsAllowGroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to act as another user (the project's test command runs as root)")
	}
	e := start(t, &fakeUploader{}, func(c *Config, _ *queue.Config) { c.AllowGroup = "65534" })
	p := e.storePath("y")
	for dir := filepath.Dir(e.socket); dir != "/"; dir = filepath.Dir(dir) {
		if strings.HasPrefix(dir, os.TempDir()) && dir != os.TempDir() {
			os.Chmod(dir, 0o755)
		}
	}
	fi, err := os.Stat(e.socket)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != nobody {
		t.Fatalf("socket %v gid %d, %v", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, err)
	}
	bin := filepath.Join(t.TempDir(), "client.test")
	copyFile(t, os.Args[0], bin)
	os.Chmod(filepath.Dir(bin), 0o755)
	b, _ := json.Marshal(hook.Request{Version: hook.Version, Op: hook.OpEnqueue, Paths: []string{p}})
	cmd := exec.Command(bin, "-test.run=^TestHelperClient$")
	cmd.Env = append(os.Environ(), "NIXS3Q_HELPER_SOCKET="+e.socket, "NIXS3Q_HELPER_REQ="+string(b))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: nobody}}
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `"ok":true`) {
		t.Fatalf("group member could not enqueue: %v: %s", err, out)
	}
}

// TestHelperClient is run as a subprocess by the tests above.
func TestHelperClient(t *testing.T) {
	sock := os.Getenv("NIXS3Q_HELPER_SOCKET")
	if sock == "" {
		t.Skip("helper process only")
	}
	var req hook.Request
	if err := json.Unmarshal([]byte(os.Getenv("NIXS3Q_HELPER_REQ")), &req); err != nil {
		t.Fatal(err)
	}
	req.Version = hook.Version
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := hook.Call(ctx, sock, req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(resp)
	os.Stdout.Write(append(b, '\n'))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
