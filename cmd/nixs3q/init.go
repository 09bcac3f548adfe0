package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/setup"
	"github.com/nixs3q/nixs3q/uploader/storeurl"
)

func runInit(ctx context.Context, args []string) error {
	fs := newFlags("init", "--store URL --secret-key-file FILE [--key-name NAME] [--public-read] [--priority N] [--gc]")
	var cfg setup.InitConfig
	fs.StringVar(&cfg.Store, "store", "", "binary cache URL: s3://BUCKET?region=...&endpoint=... or file:///DIR (required)")
	fs.StringVar(&cfg.SecretKeyFile, "secret-key-file", "", "signing key file; generated (mode 0600) when it does not exist, never overwritten (required)")
	fs.StringVar(&cfg.KeyName, "key-name", "", "name of a generated key (default: the bucket's or directory's name with -1)")
	fs.BoolVar(&cfg.PublicRead, "public-read", false, "let anyone read the bucket's objects, so that clients substitute over plain HTTP(S) without credentials")
	fs.IntVar(&cfg.Priority, "priority", 0, "Priority in nix-cache-info (default: keep the existing one, or 40 for a new cache)")
	fs.BoolVar(&cfg.GC, "gc", false, "'nixs3q gc' will run with the writer's credentials: the printed IAM policy grants s3:DeleteObject")
	fs.StringVar(&cfg.StoreDir, "store-dir", nix.DefaultStoreDir, "the Nix store directory")
	if err := fs.Parse(args); err != nil {
		return &exitError{2, errSilent}
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	if cfg.Store == "" {
		return &exitError{2, errors.New("--store and --secret-key-file are required, e.g. nixs3q init --store 's3://my-cache?region=eu-west-1' --secret-key-file /etc/nixs3q/cache.sec")}
	}
	spec, err := storeurl.Parse(cfg.Store)
	if err != nil {
		return &exitError{2, err}
	}
	if cfg.SecretKeyFile == "" {
		cfg.SecretKeyFile = spec.SecretKeyFile // the daemon reads it there too
	}
	if cfg.SecretKeyFile == "" {
		return &exitError{2, errors.New("--secret-key-file is required (or the store URL's secret-key parameter): the file is created when missing")}
	}
	if err := cfg.Validate(); err != nil {
		return &exitError{2, err}
	}
	log, err := newLogger("warn", "console")
	if err != nil {
		return &exitError{2, err}
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do if stderr is gone
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	res, err := setup.Init(ctx, cfg, log)
	if res != nil {
		res.WriteSummary(os.Stdout)
	}
	if err != nil {
		return err
	}
	res.WriteInstructions(os.Stdout)
	return nil
}
