package setup

import (
	"fmt"
	"io"
	"strings"
)

// WriteSummary prints what Init did, one line per step, marking changes,
// and a last line saying whether anything changed at all.
func (r *InitResult) WriteSummary(w io.Writer) {
	for _, s := range r.Steps {
		mark := "unchanged"
		if s.Changed {
			mark = "done     "
		}
		fmt.Fprintf(w, "%s  %s\n", mark, s.What)
	}
	if !r.Changed() {
		fmt.Fprintln(w, "Nothing to do: the cache was already set up.")
	}
}

// WriteInstructions prints, ready to paste, what the user must put
// elsewhere: the public key, the writer's IAM policy (S3), the nix.conf
// lines and NixOS settings for clients, and the NixOS module settings and
// the doctor command for builders.
func (r *InitResult) WriteInstructions(w io.Writer) {
	pub := r.PublicKey.String()
	section := func(title string) { fmt.Fprintf(w, "\n== %s\n\n", title) }

	section("Public key (clients trust the cache with it)")
	fmt.Fprintf(w, "%s\n", pub)

	if r.Bucket != "" {
		section("IAM policy for the credentials the daemon uses")
		if r.GC {
			fmt.Fprintln(w, "(with s3:DeleteObject for 'nixs3q gc')")
		} else {
			fmt.Fprintln(w, "(add s3:DeleteObject to the first statement if 'nixs3q gc' runs with them)")
		}
		fmt.Fprintln(w, WriterPolicy(r.Bucket, r.GC))
	}

	section("Clients: nix.conf")
	fmt.Fprintf(w, "extra-substituters = %s\nextra-trusted-public-keys = %s\n", r.ClientURL, pub)
	switch {
	case r.Bucket != "" && !r.PublicRead:
		fmt.Fprintln(w, "# The bucket is private: nix-daemon on each client needs AWS credentials allowed s3:GetObject.")
	case r.Bucket == "":
		fmt.Fprintln(w, "# A directory: clients on this machine use it as is; others need it served over HTTP (then use that URL).")
	}

	section("Clients: NixOS")
	fmt.Fprintf(w, "nix.settings = {\n  substituters = [ %s ];\n  trusted-public-keys = [ %s ];\n};\n", nixString(r.ClientURL), nixString(pub))

	section("Builders: NixOS (the flake's nixosModules.default)")
	fmt.Fprintf(w, "services.nixs3q = {\n  enable = true;\n  storeUrl = %s;\n  secretKeyFile = %s;\n", nixString(r.Store), nixString(r.SecretKeyFile))
	if r.Bucket != "" {
		fmt.Fprintln(w, "  environmentFile = \"/run/keys/nixs3q-aws.env\";  # AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...")
	}
	fmt.Fprintln(w, "};")

	section("Builders without NixOS")
	fmt.Fprintf(w, "nixs3q daemon --store %s --secret-key-file %s\n", shellQuote(r.Store), shellQuote(r.SecretKeyFile))
	fmt.Fprintln(w, "# and in /etc/nix/nix.conf: post-build-hook = /usr/local/bin/nixs3q-hook")

	section("Then check every link")
	doctor := fmt.Sprintf("nixs3q doctor --store %s --secret-key-file %s --public-key %s", shellQuote(r.Store), shellQuote(r.SecretKeyFile), shellQuote(pub))
	if strings.HasPrefix(r.ClientURL, "http://") || strings.HasPrefix(r.ClientURL, "https://") {
		doctor += " --public-url " + shellQuote(r.ClientURL)
	}
	fmt.Fprintln(w, doctor)
}

// nixString quotes s as a Nix string literal.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`)
	return `"` + r.Replace(s) + `"`
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe
// characters.
func shellQuote(s string) string {
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:=@,+", c)) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
