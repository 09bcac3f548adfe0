package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nixs3q/nixs3q/uploader"
)

var _ uploader.PendingLister = (*Store)(nil)

// tmpPrefix starts the names of the temporary files Put writes.
const tmpPrefix = ".tmp-"

// List walks the directory tree below the cache root, descending only into
// directories that can hold keys starting with prefix. Directory entries are
// read one directory at a time, so memory grows with the largest directory,
// not with the cache. Temporary files and anything that is not a regular
// file are skipped.
func (s *Store) List(ctx context.Context, prefix string, fn func(uploader.Object) error) error {
	return s.walk(ctx, prefix, func(key string, d fs.DirEntry) error {
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since the directory was read
		}
		if err != nil {
			return fmt.Errorf("local: list: %w", err)
		}
		return fn(uploader.Object{Key: key, Size: info.Size(), LastModified: info.ModTime()})
	})
}

// ListPending reports the temporary files of writes that have not been
// renamed into place: a crashed writer's leftovers, or a write still in
// progress in another process. Started is the file's last modification.
func (s *Store) ListPending(ctx context.Context, prefix string, fn func(uploader.PendingUpload) error) error {
	return s.walk(ctx, "", func(key string, d fs.DirEntry) error {
		target, ok := tmpTarget(key)
		if !ok || !strings.HasPrefix(target, prefix) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("local: list pending: %w", err)
		}
		return fn(uploader.PendingUpload{Key: target, ID: key, Started: info.ModTime()})
	})
}

// AbortPending removes the temporary file p.ID names. It refuses IDs that
// do not name a temporary file, so it can never remove an object.
func (s *Store) AbortPending(ctx context.Context, p uploader.PendingUpload) error {
	if _, ok := tmpTarget(p.ID); !ok {
		return fmt.Errorf("local: abort pending: %q is not a temporary file", p.ID)
	}
	return s.remove(ctx, p.ID)
}

// Delete removes key's file and fsyncs its directory. A missing key is not
// an error. Directories are never removed.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.remove(ctx, key)
}

func (s *Store) remove(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return fmt.Errorf("local: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: delete %s: %w", key, err)
	}
	info, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("local: delete %s: %w", key, err)
	case info.IsDir():
		return fmt.Errorf("local: delete %s: is a directory", key)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: delete %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("local: delete %s: %w", key, err)
	}
	return nil
}

// tmpTarget returns the key a temporary file (".tmp-<base>-<random>", as
// os.CreateTemp names them in Put) was going to be renamed to.
func tmpTarget(key string) (string, bool) {
	dir, name := path.Split(key)
	if !strings.HasPrefix(name, tmpPrefix) {
		return "", false
	}
	rest := strings.TrimPrefix(name, tmpPrefix)
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return "", false
	}
	for _, c := range rest[i+1:] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return dir + rest[:i], true
}

// walk calls fn for each regular file below the root whose key starts with
// prefix, skipping directories that cannot hold such keys. Files and
// directories removed during the walk are skipped silently.
func (s *Store) walk(ctx context.Context, prefix string, fn func(key string, d fs.DirEntry) error) error {
	if err := uploader.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("local: list: %w", err)
	}
	start := s.dir
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(s.dir, filepath.FromSlash(prefix[:i]))
	}
	var fnErr error
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if p == start || p == s.dir {
				return nil
			}
			dirKey := key + "/"
			if strings.HasPrefix(dirKey, prefix) || strings.HasPrefix(prefix, dirKey) {
				return nil
			}
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		if fnErr = fn(key, d); fnErr != nil {
			return fs.SkipAll
		}
		return nil
	})
	switch {
	case fnErr != nil:
		return fnErr
	case err != nil:
		return fmt.Errorf("local: list %q: %w", prefix, err)
	}
	return nil
}
