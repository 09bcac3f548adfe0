package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/setup"
)

// runDoctor checks the set-up and exits 0 when every check passed, 1 with
// warnings only, 2 with any failure.
func runDoctor(ctx context.Context, args []string) error {
	fs := newFlags("doctor", "[--store URL] [--secret-key-file FILE] [--public-key KEY] [--public-url URL] [--json]")
	var cfg setup.DoctorConfig
	fs.StringVar(&cfg.Store, "store", "", "binary cache URL (default: the running daemon's)")
	fs.StringVar(&cfg.SecretKeyFile, "secret-key-file", "", "signing key file to check")
	fs.StringVar(&cfg.PublicKey, "public-key", "", "public key clients trust (NAME:BASE64); must match the key file")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "URL clients substitute from over HTTP(S), e.g. http://minio:9000/BUCKET")
	fs.StringVar(&cfg.StoreDir, "store-dir", nix.DefaultStoreDir, "the Nix store directory")
	socket := fs.String("socket", defaultSocket(), "daemon socket (env NIXS3Q_SOCKET)")
	noDaemon := fs.Bool("no-daemon", false, "do not check the daemon (on a machine that only sets up or reads the cache)")
	asJSON := fs.Bool("json", false, "print the checks as JSON")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	if !*noDaemon {
		cfg.Daemon = func(ctx context.Context) (*hook.Status, error) { return fetchStatus(ctx, *socket) }
	}
	log, err := newLogger("error", "console")
	if err != nil {
		return &exitError{2, err}
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do if stderr is gone
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	report, err := setup.Doctor(ctx, cfg, log)
	if err != nil {
		return &exitError{2, err}
	}
	if *asJSON {
		err = report.WriteJSON(os.Stdout)
	} else {
		err = report.WriteText(os.Stdout)
	}
	if err != nil {
		return err
	}
	if code := report.ExitCode(); code != 0 {
		return &exitError{code, errSilent}
	}
	return nil
}
