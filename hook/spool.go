package hook

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// SpoolDir is the spool's location inside a state directory.
func SpoolDir(stateDir string) string { return filepath.Join(stateDir, "spool") }

const (
	spoolSuffix = ".paths"
	tmpPrefix   = ".tmp-"
	// maxSpoolFile bounds what the daemon reads from one spool file.
	maxSpoolFile = 16 << 20
)

// WriteSpool stores paths as a new file in dir, atomically and durably: the
// file appears under its final name only complete and fsynced, and the
// directory entry is fsynced too. It creates dir (mode 0700) when missing.
// It returns the new file's path.
//
// The hook runs as root (under nix-daemon) while the daemon usually runs as
// its own user, so when running as root the spool directory (if it had to
// be created) and the file are given to the owner of the directory above
// them, the daemon's state directory; otherwise the daemon could not read
// or remove them. Because that user can change what lies in its state
// directory, everything is done relative to a descriptor of the spool
// directory opened without following symbolic links: a spool replaced by a
// link makes the write fail instead of creating root's file elsewhere.
func WriteSpool(dir string, paths []string) (string, error) {
	var sb strings.Builder
	for _, p := range paths {
		if strings.ContainsAny(p, "\n\x00") {
			return "", fmt.Errorf("hook: spool: path %q contains a newline or NUL", p)
		}
		sb.WriteString(p)
		sb.WriteByte('\n')
	}
	dfd, owner, err := openSpoolDir(dir)
	if err != nil {
		return "", fmt.Errorf("hook: spool %s: %w", dir, err)
	}
	defer syscall.Close(dfd)
	name, err := writeSpoolFile(dfd, owner, sb.String())
	if err != nil {
		return "", fmt.Errorf("hook: spool %s: %w", dir, err)
	}
	return filepath.Join(dir, name), nil
}

func writeSpoolFile(dfd int, owner *fileOwner, content string) (string, error) {
	// The time prefix orders files oldest first; pid and a counter make
	// the name unique, and O_EXCL makes sure of it.
	var tmpName string
	var fd int
	var err error
	for i := 0; ; i++ {
		tmpName = fmt.Sprintf("%s%d-%d-%d", tmpPrefix, time.Now().UnixNano(), os.Getpid(), i)
		fd, err = syscall.Openat(dfd, tmpName, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if err != syscall.EEXIST || i > 100 {
			break
		}
	}
	if err != nil {
		return "", os.NewSyscallError("openat", err)
	}
	f := os.NewFile(uintptr(fd), tmpName)
	ok := false
	defer func() {
		if !ok {
			f.Close()
			syscall.Unlinkat(dfd, tmpName)
		}
	}()
	if owner != nil {
		if err := f.Chown(owner.uid, owner.gid); err != nil {
			return "", err
		}
	}
	if _, err := f.WriteString(content); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	name := strings.TrimPrefix(tmpName, tmpPrefix) + spoolSuffix
	if err := syscall.Renameat(dfd, tmpName, dfd, name); err != nil {
		return "", os.NewSyscallError("renameat", err)
	}
	ok = true
	if err := syscall.Fsync(dfd); err != nil {
		return "", os.NewSyscallError("fsync", err)
	}
	return name, nil
}

type fileOwner struct{ uid, gid int }

// openSpoolDir creates dir when missing and opens it without following a
// symbolic link. When running as root it also returns the owner that spool
// files should get: the owner of dir's parent (the state directory) when
// that is not root; a spool directory it creates is given to that owner
// too, and an existing one must belong to that owner or to root.
func openSpoolDir(dir string) (int, *fileOwner, error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return -1, nil, err
	}
	var owner *fileOwner
	if os.Geteuid() == 0 {
		if fi, err := os.Stat(parent); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				owner = &fileOwner{int(st.Uid), int(st.Gid)}
			}
		}
	}
	created := false
	switch err := os.Mkdir(dir, 0o700); {
	case err == nil:
		created = true
	case !os.IsExist(err):
		return -1, nil, err
	}
	dfd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if err == syscall.ELOOP || err == syscall.ENOTDIR {
			return -1, nil, fmt.Errorf("not a directory (a symbolic link?); refusing to write there")
		}
		return -1, nil, os.NewSyscallError("open", err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(dfd, &st); err != nil {
		syscall.Close(dfd)
		return -1, nil, os.NewSyscallError("fstat", err)
	}
	if owner != nil {
		switch {
		case created:
			if err := syscall.Fchown(dfd, owner.uid, owner.gid); err != nil {
				syscall.Close(dfd)
				return -1, nil, os.NewSyscallError("fchown", err)
			}
		case int(st.Uid) != owner.uid && st.Uid != 0:
			syscall.Close(dfd)
			return -1, nil, fmt.Errorf("owned by uid %d, not the state directory's owner %d", st.Uid, owner.uid)
		}
	}
	return dfd, owner, nil
}

// ListSpool returns the complete spool files in dir, oldest first. A missing
// dir is empty. Temporary files of writers that died are removed once they
// are older than an hour.
func ListSpool(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hook: spool: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tmpPrefix):
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
				os.Remove(filepath.Join(dir, name))
			}
		case strings.HasSuffix(name, spoolSuffix) && e.Type().IsRegular():
			files = append(files, filepath.Join(dir, name))
		}
	}
	sort.Strings(files)
	return files, nil
}

// ReadSpool returns the paths in one spool file. Blank lines are skipped.
func ReadSpool(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("hook: spool: %w", err)
	}
	defer f.Close()
	var paths []string
	sc := bufio.NewScanner(io.LimitReader(f, maxSpoolFile))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			paths = append(paths, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("hook: spool %s: %w", file, err)
	}
	return paths, nil
}
