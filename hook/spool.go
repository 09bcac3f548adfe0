package hook

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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
// or remove them.
func WriteSpool(dir string, paths []string) (string, error) {
	owner, err := ensureSpoolDir(dir)
	if err != nil {
		return "", fmt.Errorf("hook: spool: %w", err)
	}
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return "", fmt.Errorf("hook: spool: %w", err)
	}
	if owner != nil {
		if err := tmp.Chown(owner.uid, owner.gid); err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			return "", fmt.Errorf("hook: spool: %w", err)
		}
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var sb strings.Builder
	for _, p := range paths {
		if strings.ContainsAny(p, "\n\x00") {
			return "", fmt.Errorf("hook: spool: path %q contains a newline or NUL", p)
		}
		sb.WriteString(p)
		sb.WriteByte('\n')
	}
	if _, err := tmp.WriteString(sb.String()); err != nil {
		return "", fmt.Errorf("hook: spool: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("hook: spool: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("hook: spool: %w", err)
	}
	// The temporary name's random suffix, unique in dir, keeps the final
	// name unique too; the time prefix orders files oldest first.
	suffix := strings.TrimPrefix(filepath.Base(tmp.Name()), tmpPrefix)
	name := filepath.Join(dir, strconv.FormatInt(time.Now().UnixNano(), 10)+"-"+
		strconv.Itoa(os.Getpid())+"-"+suffix+spoolSuffix)
	if err := os.Rename(tmp.Name(), name); err != nil {
		return "", fmt.Errorf("hook: spool: %w", err)
	}
	tmp = nil
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("hook: spool: %w", err)
	}
	return name, nil
}

type fileOwner struct{ uid, gid int }

// ensureSpoolDir creates dir when missing and, when running as root, returns
// the owner that spool files should get: the owner of dir's parent (the
// state directory) when that is not root. A directory it creates as root is
// given to that owner too.
func ensureSpoolDir(dir string) (*fileOwner, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, err
	}
	var owner *fileOwner
	if os.Geteuid() == 0 {
		if fi, err := os.Stat(filepath.Dir(dir)); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				owner = &fileOwner{int(st.Uid), int(st.Gid)}
			}
		}
	}
	err := os.Mkdir(dir, 0o700)
	switch {
	case err == nil:
		if owner != nil {
			if err := os.Chown(dir, owner.uid, owner.gid); err != nil {
				return nil, err
			}
		}
	case !os.IsExist(err):
		return nil, err
	}
	return owner, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
