package setup

import (
	"errors"
	"io/fs"
	"os"

	"github.com/nixs3q/nixs3q/nix"
)

// checkKey checks the signing key file: readable, valid, private, and the
// public key clients trust.
func (d *doctor) checkKey() {
	file := d.cfg.SecretKeyFile
	if file == "" {
		d.r.skip("key-file", "no --secret-key-file given")
		return
	}
	info, err := os.Stat(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.r.fail("key-file", "run 'nixs3q init' to generate it, or fix --secret-key-file", "%s does not exist", file)
		return
	case err != nil:
		d.r.fail("key-file", "run doctor as the daemon's user, or fix the file's permissions", "%v", err)
		return
	}
	key, err := nix.LoadSecretKeyFile(file)
	if err != nil {
		d.r.fail("key-file", "give a secret key made by 'nix key generate-secret' (or by 'nixs3q init')", "%v", err)
		return
	}
	d.key = key
	d.r.ok("key-file", "%s holds key %s", file, key.Name)

	switch perm := info.Mode().Perm(); {
	case perm&0o004 != 0:
		d.r.fail("key-permissions", "chmod 0600 "+file, "%s is readable by every user (mode %04o): anyone can sign paths for this cache", file, perm)
	case perm&0o002 != 0:
		d.r.fail("key-permissions", "chmod 0600 "+file, "%s is writable by every user (mode %04o)", file, perm)
	case perm&0o060 != 0:
		d.r.warn("key-permissions", "chmod 0600 "+file+" (or 0640 only if the group is the daemon's own)", "%s is readable or writable by its group (mode %04o)", file, perm)
	default:
		d.r.ok("key-permissions", "mode %04o", perm)
	}

	pub := key.Public()
	if d.cfg.PublicKey == "" {
		d.r.skip("public-key", "no --public-key given; the key file's public key is %s", pub)
		return
	}
	want, err := nix.ParsePublicKey(d.cfg.PublicKey)
	switch {
	case err != nil:
		d.r.fail("public-key", "give --public-key as NAME:BASE64, as clients' trusted-public-keys lists it", "%v", err)
	case want.String() != pub.String():
		d.r.fail("public-key", "put "+pub.String()+" in the clients' trusted-public-keys, or sign with the key file that matches theirs",
			"the key file's public key %s is not %s: clients trusting only that refuse the cache's paths", pub, want)
	default:
		d.r.ok("public-key", "%s matches the key file", pub)
	}
}
