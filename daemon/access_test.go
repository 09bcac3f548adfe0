package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/queue"
)

const nobody = 65534

// TestPeerCredentials connects as an unprivileged user through a socket whose
// mode lets anyone in, to show that the daemon's check of the peer's
// credentials, not only the socket's mode, keeps other users out.
func TestPeerCredentials(t *testing.T) {
	testenv.RequireRoot(t)
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

	run := func(op string, paths ...string) helperResult {
		t.Helper()
		return runHelper(t, bin, e.socket, nobody, op, paths)
	}
	if res := run("enqueue", p); res.OK || !res.Permission || !strings.Contains(res.Error, "permission denied") {
		t.Fatalf("nobody could enqueue: %+v", res)
	}
	if res := run("retry"); res.OK || !res.Permission {
		t.Fatalf("nobody could retry: %+v", res)
	}
	if res := run("status"); !res.OK || res.Status == nil {
		t.Fatalf("nobody could not read status: %+v", res)
	}
	if st, _ := e.q.Stats(); st.Pending+st.Leased != 0 || st.Completed != 0 {
		t.Fatalf("a refused user changed the queue: %+v", st)
	}
}

// TestPeerCredentialsAllowGroup lets the group in through the socket's group
// ownership, with no world access.
func TestPeerCredentialsAllowGroup(t *testing.T) {
	testenv.RequireRoot(t)
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
	if res := runHelper(t, bin, e.socket, 4242, "enqueue", []string{p}); !res.OK {
		t.Fatalf("group member could not enqueue: %+v", res)
	}
}

// helperResult is what TestHelperClient reports of one request.
type helperResult struct {
	OK         bool         `json:"ok"`
	Error      string       `json:"error"`
	Permission bool         `json:"permission"` // errors.Is(err, hook.ErrPermission)
	Status     *hook.Status `json:"status"`
}

// runHelper runs one request through TestHelperClient as uid (group nobody).
func runHelper(t *testing.T, bin, socket string, uid uint32, op string, paths []string) helperResult {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestHelperClient$")
	cmd.Env = append(os.Environ(), "NIXS3Q_HELPER_SOCKET="+socket, "NIXS3Q_HELPER_OP="+op,
		"NIXS3Q_HELPER_PATHS="+strings.Join(paths, " "))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: nobody}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as uid %d: %v: %s", uid, err, out)
	}
	var res helperResult
	first := strings.SplitN(string(out), "\n", 2)[0]
	if err := json.Unmarshal([]byte(first), &res); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	return res
}

// TestHelperClient is run as a subprocess by the tests above.
func TestHelperClient(t *testing.T) {
	sock := os.Getenv("NIXS3Q_HELPER_SOCKET")
	if sock == "" {
		t.Skip("helper process only")
	}
	paths := strings.Fields(os.Getenv("NIXS3Q_HELPER_PATHS"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := hook.Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var res helperResult
	switch op := os.Getenv("NIXS3Q_HELPER_OP"); op {
	case "enqueue":
		_, err = c.Enqueue(ctx, hook.EnqueueRequest{Paths: paths, Source: "push"})
	case "retry":
		_, err = c.Retry(ctx, paths)
	case "status":
		res.Status, err = c.Status(ctx)
	default:
		t.Fatalf("unknown helper op %q", op)
	}
	if errors.Is(err, hook.ErrUnavailable) {
		t.Fatal(err)
	}
	res.OK = err == nil
	if err != nil {
		res.Error = err.Error()
		res.Permission = errors.Is(err, hook.ErrPermission)
	}
	b, _ := json.Marshal(res)
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
