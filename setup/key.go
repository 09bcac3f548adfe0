package setup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nixs3q/nixs3q/nix"
)

// ensureKey loads the signing key at path, or, when there is no file at
// path, generates one named name and writes it there in Nix's format
// ("NAME:BASE64", no newline, as 'nix key generate-secret' prints it), mode
// 0600, fsynced with its directory. An existing file is never replaced, not
// even a malformed one: that is an error. Two runs racing each other cannot
// both write: the file is created with O_EXCL.
func ensureKey(path, name string) (key *nix.SecretKey, created bool, err error) {
	if _, err := os.Lstat(path); err == nil {
		key, err := nix.LoadSecretKeyFile(path)
		if err != nil {
			return nil, false, fmt.Errorf("setup: existing key file is not replaced: %w", err)
		}
		return key, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("setup: key file: %w", err)
	}
	key, err = nix.GenerateKey(name)
	if err != nil {
		return nil, false, fmt.Errorf("setup: %w", err)
	}
	if err := writeNewFile(path, []byte(key.String()), 0o600); err != nil {
		return nil, false, fmt.Errorf("setup: write key file: %w", err)
	}
	return key, true, nil
}

// writeNewFile creates path, which must not exist, with data and perm
// (umask does not apply), and makes it durable. On failure nothing is left
// at path.
func writeNewFile(path string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
