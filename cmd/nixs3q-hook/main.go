// Command nixs3q-hook is the program nix.conf's post-build-hook names. It
// hands the outputs of a build to the nixs3q daemon and returns once they
// are durably queued, or spools them when the daemon is away. It always
// exits 0, within about two seconds, and prints at most one line.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nixs3q/nixs3q/hook"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out := hook.Run(ctx, hook.ConfigFromEnv(os.Getenv))
	if out.Message != "" {
		fmt.Fprintln(os.Stderr, out.Message)
	}
	os.Exit(0)
}
