package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
)

var _ uploader.Cache = (*Store)(nil)

// Store is a Nix binary cache in a local directory, as file:///DIR store URLs
// name it. It is safe for concurrent use, also by several processes.
type Store struct {
	dir string
}

// StaleTempAge is how long a ".tmp-*" file in the cache directory must have
// gone unmodified before New removes it as left behind by a crash. A live
// Put writes to its file continuously, so it is never that old.
const StaleTempAge = 24 * time.Hour

// New returns the Store rooted at dir, which must be an absolute path. The
// directory and its nar/ subdirectory are created (mode 0755, whatever the
// umask) when missing. Temporary files of Puts interrupted by a crash,
// ".tmp-*" files in the directory or one level below that were last
// modified more than StaleTempAge ago, are removed; failing to remove one
// is not an error.
func New(dir string) (*Store, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("local: cache directory %q is not absolute", dir)
	}
	s := &Store{dir: filepath.Clean(dir)}
	if err := s.ensureDir(filepath.Join(s.dir, "nar")); err != nil {
		return nil, fmt.Errorf("local: create cache directory: %w", err)
	}
	s.removeStaleTemps(time.Now().Add(-StaleTempAge))
	return s, nil
}

// removeStaleTemps removes ".tmp-*" regular files not modified since
// before, in the cache directory and its immediate subdirectories.
func (s *Store) removeStaleTemps(before time.Time) {
	dirs := []string{s.dir}
	if entries, err := os.ReadDir(s.dir); err == nil {
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				dirs = append(dirs, filepath.Join(s.dir, e.Name()))
			}
		}
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
				continue
			}
			if info, err := e.Info(); err == nil && info.ModTime().Before(before) {
				os.Remove(filepath.Join(d, e.Name()))
			}
		}
	}
}

// String is the file:// URL of the directory.
func (s *Store) String() string { return "file://" + filepath.ToSlash(s.dir) }

func (s *Store) path(key string) (string, error) {
	if err := uploader.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// Has reports whether key exists, with one stat.
func (s *Store) Has(ctx context.Context, key string) (bool, error) {
	p, err := s.path(key)
	if err != nil {
		return false, fmt.Errorf("local: has: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("local: has %s: %w", key, err)
	}
	info, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("local: has %s: %w", key, err)
	case !info.Mode().IsRegular():
		return false, fmt.Errorf("local: has %s: not a regular file", key)
	}
	return true, nil
}

// Get opens key; the caller closes it. A missing key gives an error
// wrapping fs.ErrNotExist.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, fmt.Errorf("local: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local: get %s: %w", key, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("local: get %s: %w", key, err)
	}
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("local: get %s: not a regular file", key)
	}
	return f, nil
}

// Put writes body to a temporary file beside the target, fsyncs it, renames
// it over the target and fsyncs the directory, so after Put returns nil the
// object survives a crash, and readers only ever see the old or the whole
// new file (mode 0644). Parent directories are created as needed. On any
// failure, a failing body, a wrong length against a non-negative opt.Size
// or ctx being cancelled (checked between reads), the temporary file is
// removed and the target is untouched. A crash mid-Put may leave a
// ".tmp-*" file behind, which readers never request and New removes once
// it is StaleTempAge old.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, opt uploader.PutOptions) error {
	p, err := s.path(key)
	if err != nil {
		return fmt.Errorf("local: put: %w", err)
	}
	if err := s.put(ctx, p, body, opt.Size); err != nil {
		return fmt.Errorf("local: put %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, target string, body io.Reader, size int64) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(target)
	if err := s.ensureDir(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(target)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := copyBody(ctx, tmp, body)
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("body is %d bytes, declared %d: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	return syncDir(dir)
}

// ensureDir creates dir when missing, every directory it creates mode 0755
// whatever the process umask (a web server serving the cache must be able
// to enter them, as it can read the 0644 files), and makes every directory
// entry it created durable, up to the parent of the cache root.
func (s *Store) ensureDir(dir string) error {
	if info, err := os.Stat(dir); err == nil && info.IsDir() {
		return nil
	}
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range missing {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
		if d == s.dir || len(d) <= len(s.dir) {
			return nil
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// copyBody copies body to dst, checking ctx between reads. Read errors are
// wrapped as such, to tell them from write errors of the cache directory.
func copyBody(ctx context.Context, dst io.Writer, body io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := body.Read(buf)
		if m > 0 {
			w, werr := dst.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		switch {
		case rerr == io.EOF:
			return n, nil
		case rerr != nil:
			return n, fmt.Errorf("read body: %w", rerr)
		}
	}
}
