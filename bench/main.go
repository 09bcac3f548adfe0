// Command bench measures nixs3q against its baselines, side by side in the
// same run, on the same inputs and the same MinIO server: the hook against a
// no-op Go program, uploads against `nix copy`, the upload pipeline against
// compression alone. Run it from the module root:
//
//	go run ./bench [-size small|full] [-runs N] [-only NAME,...] [-json]
//
// It needs Nix (run with substituters disabled; nothing leaves 127.0.0.1)
// and MinIO ($NIXS3Q_MINIO, ~/.cache/nixs3q/minio-*/minio or PATH, as the
// tests find it). Inputs are added to the local Nix store deterministically
// and reused by later runs. Each measure reports the median over the runs,
// the baseline's median and their ratio; see BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

func main() {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	var only string
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout (the table goes to stderr)")
	fs.StringVar(&o.size, "size", "full", "input sizes: small (seconds, for the smoke test) or full")
	fs.IntVar(&o.runs, "runs", 0, "runs per measure (default: 3 for small, 5 for full)")
	fs.StringVar(&only, "only", "", "comma-separated measures or groups to run: "+groupNames()+" or a row name")
	fs.StringVar(&o.workDir, "workdir", "", "where the scratch directory goes (default $TMPDIR)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if only != "" {
		o.only = strings.Split(only, ",")
	}
	for _, tool := range []string{"nix", "nix-store", "nix-build", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "%v: %s not on PATH\n", errMissingTool, tool)
			os.Exit(1)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o, tools{nixEnv: testenv.NixEnv(), minio: startMinIO}, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *asJSON {
		printTable(os.Stderr, rep)
		if err := writeJSON(os.Stdout, rep); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	printTable(os.Stdout, rep)
}
