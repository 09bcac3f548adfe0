package setup

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// checkDir runs the checks that apply to a cache directory: it exists, the
// daemon's user can write, read and delete in it, and nix-cache-info.
func (d *doctor) checkDir(ctx context.Context) {
	dir := d.spec.Dir
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.r.fail("directory", "run 'nixs3q init' to create it, or fix the store URL", "%s does not exist", dir)
		return
	case err != nil:
		d.r.fail("directory", "check the path and its parents' permissions", "%v", err)
		return
	case !info.IsDir():
		d.r.fail("directory", "fix the store URL: it must name a directory", "%s is not a directory", dir)
		return
	}
	cache, err := openDir(d.spec)
	if err != nil {
		d.r.fail("directory", "check the directory's permissions", "%v", err)
		return
	}
	d.r.ok("directory", "%s exists", dir)
	d.cache = cache

	key := d.probe + "probe"
	if err := d.putProbe(ctx, key); err != nil {
		d.r.fail("put", "let the daemon's user write in "+dir+" (owner or group with write permission)", "%v", err)
	} else {
		d.r.ok("put", "wrote %s", key)
		if err := d.getProbe(ctx, key); err != nil {
			d.r.fail("get", "let the daemon's user read "+dir, "%v", err)
		} else {
			d.r.ok("get", "read the probe back")
		}
	}
	probeDir := filepath.Join(dir, filepath.FromSlash(strings.TrimSuffix(d.probe, "/")))
	if err := os.RemoveAll(probeDir); err != nil {
		d.r.warn("delete", "remove "+probeDir+" by hand", "the probe is left behind: %v", err)
	} else {
		os.Remove(filepath.Dir(probeDir)) // only when no other run's probe is in it
		d.r.ok("delete", "deleted the probe; nothing is left under %s", d.probe)
	}
	d.checkCacheInfo(ctx)
	d.sample = func(context.Context) (string, error) {
		entries, err := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".narinfo") && e.Type().IsRegular() {
				return e.Name(), nil
			}
		}
		return "", err
	}
}
