package hook

import (
	"bufio"
	"errors"
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

// BadSpoolDir is where the daemon moves spool files it could not read,
// inside the spool directory dir.
func BadSpoolDir(dir string) string { return filepath.Join(dir, "bad") }

// ErrSpoolTooLarge is wrapped by ReadSpool's error for a file larger than
// the spool file limit: it is refused whole, never read in part.
var ErrSpoolTooLarge = errors.New("spool file exceeds the size limit")

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
	if st.Mode&0o022 != 0 {
		syscall.Close(dfd)
		return -1, nil, fmt.Errorf("writable by group or others (mode %04o); refusing to write there", st.Mode&0o7777)
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

// CheckSpoolDir reports a spool directory that others could plant files in:
// one that is not a directory (a symbolic link, say), or is writable by
// group or others. A missing directory is fine.
func CheckSpoolDir(dir string) error {
	fi, err := os.Lstat(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hook: spool: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("hook: spool %s is not a directory (%s)", dir, fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("hook: spool %s is writable by group or others (mode %04o): chmod 700 it", dir, fi.Mode().Perm())
	}
	return nil
}

// ListSpool returns the complete spool files in dir, oldest first: every
// entry named *.paths that is not a directory, so that a file of the wrong
// type is seen (and refused by ReadSpool) rather than silently skipped. A
// missing dir is empty. Temporary files of writers that died are removed
// once they are older than an hour; hooks write theirs within seconds.
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
			if info, err := e.Info(); err == nil && info.Mode().IsRegular() && time.Since(info.ModTime()) > time.Hour {
				os.Remove(filepath.Join(dir, name))
			}
		case strings.HasSuffix(name, spoolSuffix) && !e.IsDir():
			files = append(files, filepath.Join(dir, name))
		}
	}
	sort.Strings(files)
	return files, nil
}

// CountBadSpool returns how many files lie in the bad spool directory of
// the spool directory dir.
func CountBadSpool(dir string) int {
	entries, err := os.ReadDir(BadSpoolDir(dir))
	if err != nil {
		return 0
	}
	return len(entries)
}

// QuarantineSpool moves the spool file to the bad spool directory beside it
// (created mode 0700 when missing) and returns its new path. The file keeps
// its name; nothing is read from it.
func QuarantineSpool(file string) (string, error) {
	bad := BadSpoolDir(filepath.Dir(file))
	if err := os.Mkdir(bad, 0o700); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("hook: spool: %w", err)
	}
	if fi, err := os.Lstat(bad); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("hook: spool: %s is not a directory", bad)
	}
	dest := filepath.Join(bad, filepath.Base(file))
	if err := os.Rename(file, dest); err != nil {
		return "", fmt.Errorf("hook: spool: %w", err)
	}
	return dest, nil
}

// ReadSpool returns the paths in one spool file. Blank lines are skipped.
// The file is opened without following a symbolic link and without
// blocking (a FIFO cannot stall the caller), and must be a regular file
// owned by root or by uid, at most 16 MiB (ErrSpoolTooLarge otherwise,
// never a truncated read), with lines of at most 64 KiB. Any violation is
// an error and nothing of the file is returned.
func ReadSpool(file string, uid int) ([]string, error) {
	fd, err := syscall.Open(file, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if err == syscall.ELOOP {
			return nil, fmt.Errorf("hook: spool %s: a symbolic link", file)
		}
		return nil, fmt.Errorf("hook: spool %s: %w", file, os.NewSyscallError("open", err))
	}
	f := os.NewFile(uintptr(fd), file)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("hook: spool %s: %w", file, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("hook: spool %s: not a regular file (%s)", file, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != uid {
		return nil, fmt.Errorf("hook: spool %s: owned by uid %d, neither root nor uid %d", file, st.Uid, uid)
	}
	if fi.Size() > maxSpoolFile {
		return nil, fmt.Errorf("hook: spool %s: %w (%d bytes, limit %d)", file, ErrSpoolTooLarge, fi.Size(), maxSpoolFile)
	}
	var paths []string
	// One byte over the limit tells a file that grew since the stat.
	lr := &io.LimitedReader{R: f, N: maxSpoolFile + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			paths = append(paths, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("hook: spool %s: %w", file, err)
	}
	if lr.N == 0 {
		return nil, fmt.Errorf("hook: spool %s: %w (limit %d bytes)", file, ErrSpoolTooLarge, maxSpoolFile)
	}
	return paths, nil
}
