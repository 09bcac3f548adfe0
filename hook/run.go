package hook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config is what nixs3q-hook needs, normally read from its environment.
type Config struct {
	Socket   string // daemon socket; default DefaultSocket
	StateDir string // holds the spool; default DefaultStateDir
	// Timeout is the budget for reading DRV_PATH and reaching the daemon;
	// default 1500ms.
	Timeout time.Duration
	// SpoolTimeout is the budget for writing the spool file when the
	// daemon could not be reached; default 500ms.
	SpoolTimeout time.Duration
	OutPaths     string // OUT_PATHS: space-separated output paths
	DrvPath      string // DRV_PATH
	// StoreDir is the store directory DRV_PATH must lie in; default
	// NIX_STORE_DIR from the environment, else /nix/store.
	StoreDir string
}

// DefaultStoreDir is the store directory the hook assumes when neither
// Config.StoreDir nor NIX_STORE_DIR says otherwise.
const DefaultStoreDir = "/nix/store"

// ConfigFromEnv builds a Config from an environment lookup function.
func ConfigFromEnv(getenv func(string) string) Config {
	return Config{
		Socket:   getenv(SocketEnv),
		StateDir: getenv(StateDirEnv),
		OutPaths: getenv("OUT_PATHS"),
		DrvPath:  getenv("DRV_PATH"),
		StoreDir: getenv("NIX_STORE_DIR"),
	}
}

// Outcome says what Run did.
type Outcome struct {
	Paths   []string
	Queued  bool   // the daemon acknowledged a durable enqueue
	Spooled string // spool file written instead, if any
	// Message is the one line the hook prints, empty when all went well.
	Message string
}

// Run queues the outputs of one build: it sends them to the daemon and
// waits for the durable acknowledgement, and when the daemon cannot be
// reached in time it writes them to the spool instead. Reading DRV_PATH and
// reaching the daemon share Timeout; the spool write has SpoolTimeout; so it
// never blocks longer than about their sum (or ctx's deadline, if sooner),
// and it never returns an error: what went wrong is described in
// Outcome.Message, one line. A spool write that misses its deadline is
// abandoned (its temporary file is removed by the daemon later) and the
// message says the paths were not queued.
func Run(ctx context.Context, cfg Config) Outcome {
	if cfg.Socket == "" {
		cfg.Socket = DefaultSocket
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 1500 * time.Millisecond
	}
	if cfg.SpoolTimeout <= 0 {
		cfg.SpoolTimeout = 500 * time.Millisecond
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = DefaultStoreDir
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	paths := strings.Fields(cfg.OutPaths)
	if len(paths) == 0 && cfg.DrvPath != "" {
		outs, err := OutputsFromDrv(cctx, cfg.DrvPath, cfg.StoreDir)
		if err != nil {
			return Outcome{Message: fmt.Sprintf("nixs3q-hook: no OUT_PATHS and %v; nothing queued", err)}
		}
		paths = outs
	}
	if len(paths) == 0 && cfg.DrvPath == "" {
		return Outcome{}
	}
	out := Outcome{Paths: paths}

	err := send(cctx, cfg.Socket, paths, cfg.DrvPath)
	if err == nil {
		out.Queued = true
		return out
	}
	var refused *refusedError
	if errors.As(err, &refused) && len(refused.rest) == 0 {
		// The daemon is up and said these paths are invalid: spooling
		// them would only be refused again.
		out.Message = "nixs3q-hook: " + err.Error()
		return out
	}
	msg := fmt.Sprintf("daemon unreachable (%v)", err)
	if refused != nil {
		msg = refused.msg
		paths = refused.rest
	}
	spooled := paths
	if cfg.DrvPath != "" {
		spooled = append(spooled[:len(spooled):len(spooled)], BuildItem(cfg.DrvPath))
	}
	sctx, scancel := context.WithTimeout(ctx, cfg.SpoolTimeout)
	defer scancel()
	file, serr := writeSpoolWithin(sctx, SpoolDir(cfg.StateDir), spooled)
	if serr != nil {
		out.Message = fmt.Sprintf("nixs3q-hook: %s and spool failed: %v; %d path(s) not queued", msg, serr, len(paths))
		return out
	}
	out.Spooled = file
	out.Message = fmt.Sprintf("nixs3q-hook: %s; %d path(s) spooled", msg, len(paths))
	return out
}

// writeSpool is WriteSpool; tests replace it to simulate a stalled disk.
var writeSpool = WriteSpool

// writeSpoolWithin runs writeSpool, giving up when ctx is done. The write
// then goes on in the background until the process exits; a file it leaves
// half-written is a temporary one, which is never read.
func writeSpoolWithin(ctx context.Context, dir string, paths []string) (string, error) {
	type result struct {
		file string
		err  error
	}
	done := make(chan result, 1)
	write := writeSpool
	go func() {
		file, err := write(dir, paths)
		done <- result{file, err}
	}()
	select {
	case r := <-done:
		return r.file, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("hook: spool write did not finish in time: %w", ctx.Err())
	}
}

// refusedError reports paths the daemon refused as invalid. rest holds the
// valid paths that still need a home, when the daemon did not take them.
type refusedError struct {
	msg  string
	rest []string
}

func (e *refusedError) Error() string { return e.msg }

// send enqueues paths. When the daemon refuses some of them (a path that is
// invalid or already gone), it sends the rest again, so that one bad output
// does not keep the good ones out. A refusal lists at most MaxRefusals
// paths, so this repeats, at most maxSendRounds times in all; what is left
// then (valid paths among unlisted invalid ones) is returned as the rest to
// spool, and the daemon's spool ingestion drops the invalid ones. A daemon
// that answers with an error but no refusals (shutting down, queue trouble)
// counts as unreachable.
func send(ctx context.Context, socket string, paths []string, drv string) error {
	c, err := Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := ""
	for round := 1; ; round++ {
		_, err = c.Enqueue(ctx, EnqueueRequest{Paths: paths, Drv: drv, Source: "hook"})
		var refused *RefusedError
		switch {
		case err == nil && msg == "":
			return nil
		case err == nil:
			return &refusedError{msg: msg}
		case !errors.As(err, &refused) || len(refused.Refused) == 0:
			if !errors.Is(err, ErrUnavailable) {
				err = fmt.Errorf("daemon error: %w", err)
			}
			if msg == "" {
				return err
			}
			return &refusedError{msg: fmt.Sprintf("%s; the others: %v", msg, err), rest: paths}
		}
		if msg == "" {
			msg = fmt.Sprintf("refused %s: %s", refused.Refused[0].Path, refused.Refused[0].Reason)
			if n := refused.Invalid(); n > 1 {
				msg += fmt.Sprintf(" (and %d more)", n-1)
			}
		}
		if refused.Invalid() >= len(paths) {
			return &refusedError{msg: msg}
		}
		bad := make(map[string]bool, len(refused.Refused))
		for _, r := range refused.Refused {
			bad[r.Path] = true
		}
		var rest []string
		for _, p := range paths {
			if !bad[p] {
				rest = append(rest, p)
			}
		}
		if len(rest) == 0 {
			return &refusedError{msg: msg}
		}
		if round >= maxSendRounds || len(rest) == len(paths) {
			return &refusedError{msg: msg + "; the others: too many refusals to sort out here", rest: rest}
		}
		paths = rest
	}
}

// maxSendRounds bounds the enqueue requests send makes for one hook run.
const maxSendRounds = 3
