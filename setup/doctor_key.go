package setup

import (
	"errors"
	"io/fs"
	"os"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/nix"
)

// checkKey checks the signing key file (readable, valid, private), that
// the daemon signs with it, and the public key clients trust. Without a key
// file, the daemon's key stands in for it.
func (d *doctor) checkKey(st *hook.Status) {
	var daemonKey *nix.PublicKey
	if st != nil && st.PublicKey != "" {
		if pk, err := nix.ParsePublicKey(st.PublicKey); err == nil {
			daemonKey = &pk
		}
	}
	file := d.cfg.SecretKeyFile
	if file == "" {
		if daemonKey != nil {
			d.signer = daemonKey
			d.r.skip("key-file", "no --secret-key-file given; the daemon signs with %s", daemonKey)
		} else {
			d.r.skip("key-file", "no --secret-key-file given")
		}
		d.checkPublicKey()
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
	pub := key.Public()
	d.signer = &pub
	if daemonKey != nil && daemonKey.String() != pub.String() {
		d.r.fail("key-file", "give the daemon this key file (--secret-key-file), or check the one it uses",
			"the daemon signs with %s, but %s holds %s", daemonKey, file, pub)
	} else {
		d.r.ok("key-file", "%s holds key %s", file, key.Name)
	}

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
	d.checkPublicKey()
}

// checkPublicKey compares --public-key with the key narinfos are signed
// with.
func (d *doctor) checkPublicKey() {
	if d.cfg.PublicKey == "" {
		if d.signer != nil {
			d.r.skip("public-key", "no --public-key given; clients must trust %s", d.signer)
		} else {
			d.r.skip("public-key", "no --public-key given")
		}
		return
	}
	want, err := nix.ParsePublicKey(d.cfg.PublicKey)
	switch {
	case err != nil:
		d.r.fail("public-key", "give --public-key as NAME:BASE64, as clients' trusted-public-keys lists it", "%v", err)
	case d.signer == nil:
		d.r.skip("public-key", "no key file and no daemon to compare %s with", want)
	case want.String() != d.signer.String():
		d.r.fail("public-key", "put "+d.signer.String()+" in the clients' trusted-public-keys, or sign with the key that matches theirs",
			"the cache is signed with %s, not %s: clients trusting only that refuse the cache's paths", d.signer, want)
	default:
		d.r.ok("public-key", "%s matches the signing key", want)
	}
}
