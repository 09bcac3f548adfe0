// Command nixs3q publishes what Nix builds to an S3 or local binary cache.
// `nixs3q daemon` runs the service; push, status, wait and retry are thin
// clients of it over its Unix socket.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries a specific exit code out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func (e *exitError) Unwrap() error { return e.err }

const usage = `nixs3q: publish Nix build outputs to an S3 or local binary cache

Usage:
  nixs3q daemon --store URL --secret-key-file FILE [flags]   run the upload daemon
  nixs3q push [--socket PATH] [--wait] PATH...                queue store paths by hand (and wait for them)
  nixs3q status [--socket PATH] [--json | --watch]            show the queue, uploads and failures
  nixs3q wait [--socket PATH] [--timeout D] [PATH...]         block until these closures are in the cache
                                                              (no PATH: until the queue is drained)
  nixs3q retry [--socket PATH] [PATH...]                      move failed paths back to pending
  nixs3q init --store URL --secret-key-file FILE [flags]      set up a cache and print what clients need
  nixs3q doctor [--store URL] [--secret-key-file FILE] [...]  check every link from builder to clients
  nixs3q copy --to URL [--secret-key-file FILE] PATH...       upload closures now, without a daemon
  nixs3q verify --store URL [--repair] [flags]                check a cache, and mend it with --repair
  nixs3q gc --store URL (--keep-days N | --keep-since TIME)   delete what no recent, re-asserted or pinned closure needs
  nixs3q pin --store URL [--name NAME] PATH...                keep closures until unpinned
  nixs3q unpin --store URL NAME...                            remove pins
  nixs3q pins --store URL [--json]                            list pins
  nixs3q version

Run 'nixs3q COMMAND -h' for a command's flags.
`

var version = "dev"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "daemon":
		err = runDaemon(ctx, args)
	case "push":
		err = runPush(ctx, args)
	case "status":
		err = runStatus(ctx, args)
	case "wait":
		err = runWait(ctx, args)
	case "retry":
		err = runRetry(ctx, args)
	case "init":
		err = runInit(ctx, args)
	case "doctor":
		err = runDoctor(ctx, args)
	case "copy":
		err = runCopy(ctx, args)
	case "verify":
		err = runVerify(ctx, args)
	case "gc":
		err = runGC(ctx, args)
	case "pin":
		err = runPin(ctx, args)
	case "unpin":
		err = runUnpin(ctx, args)
	case "pins":
		err = runPins(ctx, args)
	case "version", "--version":
		fmt.Println("nixs3q", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "nixs3q: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "nixs3q "+cmd+": "+err.Error())
		}
		os.Exit(code)
	}
}

// errSilent marks an error whose message was already printed.
var errSilent = errors.New("")
