package local_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/local"
)

// childEnv makes the test binary run fileSystemChild instead of the tests.
const childEnv = "NIXS3Q_LOCAL_ERRORS_CHILD"

// The local backend reports file system failures as the standard library
// does; Classify reads them without any translation. These are real
// failures of a real file system: a full tmpfs, a read-only tmpfs, and a
// directory the daemon's user may not write.
func TestRealFileSystemErrors(t *testing.T) {
	want := map[string]struct {
		errno     syscall.Errno
		permanent bool
		code      string
	}{
		"full":      {syscall.ENOSPC, false, "no_space"},
		"read-only": {syscall.EROFS, true, "read_only"},
		"denied":    {syscall.EACCES, true, "permission"},
	}

	// ENOSPC and EROFS need file systems of their own: mount tmpfs in a
	// private mount namespace of a child process (a user namespace too when
	// not root), so that nothing changes for the rest of the machine.
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if os.Geteuid() != 0 {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
		testenv.Missing(t, "mount namespaces: %v", err)
		return
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := results(out)

	// EACCES: as root, in a child that drops to nobody; otherwise here.
	if os.Geteuid() == 0 {
		dir := t.TempDir()
		// The test's temporary directories are private to their user.
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"="+readOnlyCache(t, dir), childEnv+"_DENIED=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}}
		exe, err := copyExecutable(t, os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		cmd.Path, cmd.Args[0] = exe, exe
		denied, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child as nobody: %v\n%s", err, denied)
		}
		got["denied"] = results(denied)["denied"]
		out = append(out, denied...)
	} else {
		got["denied"] = deniedResult(readOnlyCache(t, t.TempDir()))
	}

	for name, w := range want {
		if g, wantResult := got[name], fmt.Sprintf("errno=%d permanent=%v code=%s", w.errno, w.permanent, w.code); g != wantResult {
			t.Errorf("%s: got %q, want %q\n%s", name, g, wantResult, out)
		}
	}
}

// results reads the RESULT lines a child printed: name → result.
func results(out []byte) map[string]string {
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			name, result, _ := strings.Cut(rest, " ")
			got[name] = result
		}
	}
	return got
}

// copyExecutable copies the test binary where nobody may run it: the build
// directory of go test is private to its user. The caller has opened the
// parent of t.TempDir to others.
func copyExecutable(t *testing.T, src string) (string, error) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "local.test")
	return dst, os.WriteFile(dst, data, 0o755)
}

// TestMain runs the child half of TestRealFileSystemErrors when started by
// it, and the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := fileSystemChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fileSystemChild provokes the failures and prints a RESULT line for each.
func fileSystemChild(dir string) error {
	if os.Getenv(childEnv+"_DENIED") != "" {
		fmt.Printf("RESULT denied %s\n", deniedResult(dir))
		return nil
	}
	// Keep the mounts of this namespace from propagating to the host's.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}

	full := filepath.Join(dir, "full")
	if err := mountTmpfs(full, "size=64k"); err != nil {
		return err
	}
	store, err := local.New(full)
	if err != nil {
		return err
	}
	body := strings.NewReader(strings.Repeat("x", 1<<20))
	err = store.Put(context.Background(), "nar/big.nar", body, uploader.PutOptions{Size: 1 << 20})
	fmt.Printf("RESULT full %s\n", result(err))

	ro := filepath.Join(dir, "ro")
	if err := mountTmpfs(ro, "ro"); err != nil {
		return err
	}
	_, err = local.New(ro)
	fmt.Printf("RESULT read-only %s\n", result(err))
	return nil
}

// readOnlyCache makes a cache directory of mode 0555 in dir: only root may
// write into it.
func readOnlyCache(t *testing.T, dir string) string {
	cache := filepath.Join(dir, "cache")
	if _, err := local.New(cache); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cache, 0o555); err != nil {
		t.Fatal(err)
	}
	return cache
}

// deniedResult puts into cache, a directory this process may not write.
func deniedResult(cache string) string {
	store, err := local.New(cache)
	if err != nil {
		return "new: " + err.Error()
	}
	err = store.Put(context.Background(), "x.narinfo", strings.NewReader("x"), uploader.PutOptions{Size: 1})
	return result(err)
}

func mountTmpfs(dir, opts string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var flags uintptr
	if opts == "ro" {
		flags, opts = syscall.MS_RDONLY, ""
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// result describes err as the parent checks it: the errno the standard
// library reports and Classify's verdict.
func result(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Sprintf("no errno in %v", err)
	}
	if !errors.Is(err, fs.ErrPermission) && errno == syscall.EACCES {
		return "EACCES does not match fs.ErrPermission"
	}
	c := uploader.Classify(err)
	return fmt.Sprintf("errno=%d permanent=%v code=%s", errno, c.Permanent, c.Code)
}
