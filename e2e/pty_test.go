//go:build e2e

package e2e

import (
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/nixs3q/nixs3q/internal/vt"
)

// TestCopyUnderPseudoTerminal runs `nixs3q copy` on a pseudo-terminal 120
// columns wide, as a person at a terminal would, against a cache slow
// enough (200 ms a request) for the upload to take a few seconds, and
// checks the screen: while it runs, one live line with the paths done, the
// bytes, and the NAR being uploaded, never wider than the terminal; at the
// end, the summary alone, the live line gone.
func TestCopyUnderPseudoTerminal(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-pty")
	key := n.generateKey(t, ctx, "e2e-pty-1")
	proxy := startSlowProxy(t, bucket.endpoint, 200*time.Millisecond)
	roots := n.buildPlain(t, ctx, newNonce(t), "withBig")
	closure := n.closure(t, ctx, roots)
	t.Cleanup(func() { n.deletePaths(t, closure) })

	store := "s3://e2e-pty?endpoint=http://" + proxy.host + "&region=us-east-1"
	cmd := exec.CommandContext(ctx, bin.nixs3q, append([]string{"copy", "--to", store, "--secret-key-file", key.secretFile}, roots...)...)
	cmd.Env = append(srv.daemonEnv(n), "TERM=xterm")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 120, Rows: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	scr := vt.New(120, 20)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(scr, ptmx) // ends with EIO when copy exits
	}()

	live := regexp.MustCompile(`^\d+/6 paths, .* of .*, uploading [0-9a-z]{7}-e2e-[a-z-]+ \(\d+% of [0-9.]+ [KM]iB\)`)
	var seen string
	deadline := time.Now().Add(2 * time.Minute)
	for seen == "" && time.Now().Before(deadline) {
		for _, line := range strings.Split(scr.String(), "\n") {
			if live.MatchString(line) {
				seen = line
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if seen == "" {
		t.Errorf("never saw a live progress line; the screen shows:\n%s", scr.String())
	} else {
		t.Logf("live line seen: %q", seen)
	}
	err = cmd.Wait()
	<-copied
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	final := scr.String()
	if err != nil {
		t.Fatalf("copy under a terminal: %v; the screen shows:\n%s", err, final)
	}
	t.Logf("final screen:\n%s", final)
	want := regexp.MustCompile(`^nixs3q copy: 6/6 paths done in [0-9.ms]+: 6 uploaded \([0-9.]+ MiB of NAR, [0-9.]+ [KM]iB/s\), 0 already in the cache$`)
	if !want.MatchString(final) {
		t.Errorf("final screen is not the summary alone:\n%s", final)
	}
	if scr.Wrapped() {
		t.Error("a line wrapped on the terminal")
	}
	verifyCache(t, ctx, bucket, key.public)
}
