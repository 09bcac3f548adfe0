package uploader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/nix"
)

// PathInfo is what the store's database records about one valid store path.
type PathInfo struct {
	Path       string   // full store path
	NarHash    nix.Hash // sha256 of the path's NAR serialisation
	NarSize    uint64   // length of that NAR
	References []string // full store paths, sorted; may include Path itself
	Deriver    string   // full store path of the deriver, or ""
	Sigs       []string // "keyname:base64"
	CA         string   // content address in narinfo text form, or ""
}

// ErrPathGone reports that a store path asked about is not valid in the
// store (any more): garbage-collected, deleted, or never built. Retrying
// cannot bring it back.
var ErrPathGone = errors.New("uploader: store path is no longer valid (garbage-collected?)")

// PathInfoSource reads store path metadata.
type PathInfoSource interface {
	// PathInfo returns the metadata of paths, or with closure set, of their
	// closure (paths and everything they reference, transitively). Each path
	// appears once, in sorted order. If any requested path is not valid in
	// the store the error wraps ErrPathGone and names the path. It blocks
	// until the store answers or ctx is done, and is safe for concurrent use.
	PathInfo(ctx context.Context, paths []string, closure bool) ([]PathInfo, error)
}

// NixCLI is a PathInfoSource that runs `nix path-info --json`. The zero value
// is usable: it runs "nix" from PATH against /nix/store. See the package
// documentation for why this source was chosen and which output shapes of
// which Nix versions it reads.
type NixCLI struct {
	Nix       string   // command to run; default "nix"
	StoreDir  string   // default nix.DefaultStoreDir
	Env       []string // environment of the command; nil inherits ours
	BatchSize int      // store paths per exec; default 500
	// Timeout bounds one exec, so that a wedged nix-daemon cannot hold a
	// worker forever; default 5 minutes (a closure of tens of thousands
	// of paths takes seconds).
	Timeout time.Duration
}

var _ PathInfoSource = NixCLI{}

// DefaultBatchSize is the number of paths NixCLI passes to one exec: far
// below the kernel's argument-size limit even for long store path names.
const DefaultBatchSize = 500

// maxStderr bounds the diagnostic output of Nix kept for error messages.
const maxStderr = 4 << 10

func (n NixCLI) storeDir() string {
	if n.StoreDir == "" {
		return nix.DefaultStoreDir
	}
	return n.StoreDir
}

// PathInfo implements PathInfoSource. Paths are checked to be top-level store
// paths and to exist (os.Lstat) before Nix runs; Nix then runs once per batch
// of BatchSize paths, and the results of all batches are merged. The
// command's stderr is only used for error messages.
func (n NixCLI) PathInfo(ctx context.Context, paths []string, closure bool) ([]PathInfo, error) {
	storeDir := n.storeDir()
	var want []string
	for _, p := range paths {
		if _, err := nix.ParseStorePath(storeDir, p); err != nil {
			return nil, fmt.Errorf("uploader: path info: %w", err)
		}
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("uploader: %s: %w", p, ErrPathGone)
		}
		want = append(want, p)
	}
	slices.Sort(want)
	want = slices.Compact(want)

	batch := n.BatchSize
	if batch <= 0 {
		batch = DefaultBatchSize
	}
	byPath := make(map[string]PathInfo)
	for i := 0; i < len(want); {
		// Paths already in an earlier batch's closure are not asked again.
		var chunk []string
		for ; i < len(want) && len(chunk) < batch; i++ {
			if _, done := byPath[want[i]]; !done {
				chunk = append(chunk, want[i])
			}
		}
		if len(chunk) == 0 {
			continue
		}
		infos, err := n.run(ctx, storeDir, chunk, closure)
		if err != nil {
			return nil, err
		}
		for _, info := range infos {
			byPath[info.Path] = info
		}
	}
	for _, p := range want {
		if _, ok := byPath[p]; !ok {
			return nil, fmt.Errorf("uploader: nix path-info did not report %s", p)
		}
	}
	out := make([]PathInfo, 0, len(byPath))
	for _, p := range slices.Sorted(maps.Keys(byPath)) {
		out = append(out, byPath[p])
	}
	return out, nil
}

// invalidPathRE matches the message with which Nix refuses an invalid path
// (Nix 2.x and Lix: "error: path '/nix/store/...' is not valid").
var invalidPathRE = regexp.MustCompile(`path '([^']+)' is not valid`)

// ansiRE matches the colour codes Nix puts around paths on a terminal.
var ansiRE = regexp.MustCompile("\x1b\\[[0-9;]*m")

func (n NixCLI) run(ctx context.Context, storeDir string, paths []string, closure bool) ([]PathInfo, error) {
	bin := n.Nix
	if bin == "" {
		bin = "nix"
	}
	args := []string{"--extra-experimental-features", "nix-command", "path-info", "--json"}
	if closure {
		args = append(args, "--recursive")
	}
	args = append(args, paths...)
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = n.Env
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: maxStderr}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		if parent.Err() != nil {
			return nil, fmt.Errorf("uploader: nix path-info: %w", parent.Err())
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("uploader: nix path-info gave no answer within %s (is nix-daemon responsive?): %w", timeout, ctx.Err())
		}
		msg := strings.TrimSpace(ansiRE.ReplaceAllString(stderr.String(), ""))
		if m := invalidPathRE.FindStringSubmatch(msg); m != nil {
			return nil, fmt.Errorf("uploader: %s: %w", m[1], ErrPathGone)
		}
		return nil, fmt.Errorf("uploader: nix path-info: %w: %s", err, msg)
	}
	infos, invalid, err := parsePathInfoJSON(stdout.Bytes(), storeDir)
	if err != nil {
		return nil, fmt.Errorf("uploader: nix path-info: %w", err)
	}
	if len(invalid) > 0 {
		return nil, fmt.Errorf("uploader: %s: %w", strings.Join(invalid, ", "), ErrPathGone)
	}
	return infos, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
