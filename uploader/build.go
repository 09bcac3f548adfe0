package uploader

import (
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
)

// Log policies (Config.UploadLogs).
const (
	// LogsNone uploads no build logs.
	LogsNone = "none"
	// LogsAll uploads the log of every derivation built on this machine
	// that Nix ran the post-build-hook for, which means every successful
	// build: Nix runs no hook after a failed one, so nixs3q never learns
	// of failed builds and offers no "failed" policy.
	LogsAll = "all"
)

// Log outcomes (BuildResult.Log).
const (
	LogOff      = "off"      // UploadLogs is none
	LogUploaded = "uploaded" // this call uploaded it
	LogPresent  = "present"  // the cache already had it
	LogAbsent   = "absent"   // Nix kept no log (build-logs = false, or a substituted derivation)
	LogExcluded = "excluded" // Filters.Exclude matches the derivation's name
)

// ErrRealisationPending reports that a realisation depends on one
// (dependentRealisations, Nix 2.8) that the cache does not hold yet. The
// realisation is not written, so no client sees it without what it needs;
// the build that produced the dependency publishes it, and a retry then
// succeeds. Classify calls it transient.
var ErrRealisationPending = errors.New("uploader: a realisation it depends on is not in the cache yet")

// BuildResult says what PublishBuild did.
type BuildResult struct {
	// Result counts the output closures uploaded for realisations.
	Result
	// Realisations is the number of realisations published, each in both
	// layouts; HeldBackRealisations those left out because the filters
	// keep their output out of the cache.
	Realisations, HeldBackRealisations int
	// Log is LogOff, LogUploaded, LogPresent or LogAbsent, and LogBytes the
	// size of the log as stored.
	Log      string
	LogBytes int64
}

// PublishBuild publishes what the cache should hold about the derivation
// drv (a full .drv store path) besides its outputs' closures, which are
// queued on their own:
//
//   - its realisations, when it has floating content-addressed outputs
//     (ca-derivations; input-addressed and fixed-output derivations need
//     none, their output paths are in the derivation): each
//     output's closure is uploaded first (Upload, so already published
//     paths cost a lookup at most), then the realisation, signed, in the
//     Nix 2.8 layout and in the build trace layout of Nix 2.35; a
//     realisation is never written before its output's narinfo, and not
//     at all when the filters keep the output out;
//   - with UploadLogs "all", its build log from Nix's log directory
//     (LogDir/drvs/<2 chars>/<rest>[.bz2]) at "log/<drv basename>", where
//     `nix log` looks: gzip-compressed with Content-Encoding gzip on caches
//     that serve encodings (S3; decoded by Nix 2.8 and by current Nix,
//     which dropped xz and bzip2 encodings in 2.34), plain text in a local
//     directory, as Nix's own file:// store writes it. A log the cache has
//     is not uploaded again, and neither is the log of a derivation whose
//     name ("hello-2.12.drv") Filters.Exclude matches: a pattern that keeps
//     a package's outputs out keeps its logs out too.
//
// Errors wrap their cause for Classify; what was published before an error
// stays published, and a retry redoes only what is missing.
func (u *Uploader) PublishBuild(ctx context.Context, drv string) (BuildResult, error) {
	res := BuildResult{Log: LogOff}
	sp, err := nix.ParseStorePath(u.cfg.StoreDir, drv)
	if err != nil || !strings.HasSuffix(sp.Name, ".drv") {
		return res, fmt.Errorf("uploader: publish build %s: not a derivation in %s", drv, u.cfg.StoreDir)
	}
	if _, err := os.Lstat(drv); errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("uploader: publish build %s: %w", drv, ErrPathGone)
	}
	log := u.log.With(zap.String("drv", drv))
	switch {
	case u.cfg.UploadLogs != LogsAll:
	case u.filter.exclude != nil && u.filter.exclude.MatchString(sp.Name):
		res.Log = LogExcluded
		log.Info("not uploading the build log: the derivation's name matches --exclude")
	default:
		if err := u.publishLog(ctx, sp, &res); err != nil {
			return res, fmt.Errorf("uploader: build log of %s: %w", drv, err)
		}
	}
	// Realisations after the log: they wait for their outputs' closures,
	// the log waits for nothing.
	if rs, ok := u.src.(RealisationSource); ok && hasFloatingOutput(drv, log) {
		if err := u.publishRealisations(ctx, rs, drv, &res, log); err != nil {
			return res, err
		}
	}
	return res, nil
}

// WantsBuild reports whether PublishBuild would publish anything for drv:
// a log (UploadLogs all) or realisations (floating outputs). It reads at
// most the start of the derivation file, and is safe for concurrent use.
// The daemon queues a build only when it is wanted, so that the default
// configuration adds nothing per build.
func (u *Uploader) WantsBuild(drv string) bool {
	return u.cfg.UploadLogs == LogsAll || hasFloatingOutput(drv, u.log)
}

// hasFloatingOutput reports whether the derivation has an output whose path
// is known only after the build (ca-derivations): only those need a
// realisation for clients to substitute them, and asking Nix costs a
// process per build. A derivation file that cannot be read counts as
// having one, so that nothing is missed.
func hasFloatingOutput(drv string, log *zap.Logger) bool {
	outs, err := nix.ReadDerivationOutputs(drv)
	if err != nil {
		log.Debug("cannot read the derivation's outputs; asking Nix for realisations anyway", zap.Error(err))
		return true
	}
	for _, o := range outs {
		if o.Path == "" {
			return true
		}
	}
	return false
}

func (u *Uploader) publishRealisations(ctx context.Context, rs RealisationSource, drv string, res *BuildResult, log *zap.Logger) error {
	reals, err := rs.Realisations(ctx, drv)
	if err != nil {
		return err
	}
	for _, r := range reals {
		out := filepath.Join(u.cfg.StoreDir, r.OutPath)
		ur, err := u.Upload(ctx, out)
		res.Uploaded += ur.Uploaded
		res.Skipped += ur.Skipped
		res.Bytes += ur.Bytes
		res.NarBytes += ur.NarBytes
		res.Excluded += ur.Excluded
		res.HeldBack += ur.HeldBack
		if err != nil {
			return fmt.Errorf("uploader: realisation %s^%s: %w", drv, r.OutputName, err)
		}
		if ur.HeldBy != "" {
			log.Warn("not publishing realisation: its output is kept out by a filter",
				zap.String("output", r.OutputName), zap.String("held_back_by", ur.HeldBy))
			res.HeldBackRealisations++
			continue
		}
		for _, id := range slices.Sorted(maps.Keys(r.Dependent)) {
			dep := nix.Realisation{ID: id}
			ok, err := u.cache.Has(ctx, dep.KeyV1())
			if err != nil {
				return fmt.Errorf("uploader: realisation %s^%s: %w", drv, r.OutputName, err)
			}
			if !ok {
				return fmt.Errorf("uploader: realisation %s^%s needs %s: %w", drv, r.OutputName, id, ErrRealisationPending)
			}
		}
		if u.key != nil {
			r.Sign(u.key)
		}
		if key := r.KeyV1(); key != "" {
			if err := u.putBytes(ctx, key, r.JSONV1(), "application/json"); err != nil {
				return err
			}
		}
		if err := u.putBytes(ctx, r.TraceKey(), r.TraceJSON(), "application/json"); err != nil {
			return err
		}
		res.Realisations++
		log.Info("published realisation", zap.String("output", r.OutputName), zap.String("out_path", out))
	}
	return nil
}

func (u *Uploader) putBytes(ctx context.Context, key string, data []byte, contentType string) error {
	err := u.cache.Put(ctx, key, strings.NewReader(string(data)), PutOptions{ContentType: contentType, Size: int64(len(data))})
	if err != nil {
		return fmt.Errorf("uploader: put %s: %w", key, err)
	}
	return nil
}

// logFile opens the build log Nix kept for the derivation, decompressed,
// with its size (-1 when only the compressed size, hint, is known). It
// returns fs.ErrNotExist (wrapped) when there is none.
func (u *Uploader) logFile(sp nix.StorePath) (rc io.ReadCloser, size, hint int64, err error) {
	base := sp.Base()
	name := filepath.Join(u.cfg.LogDir, "drvs", base[:2], base[2:])
	compressed := true
	f, err := os.Open(name + ".bz2")
	if errors.Is(err, fs.ErrNotExist) {
		compressed = false
		f, err = os.Open(name)
	}
	if err != nil {
		return nil, 0, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	if !compressed {
		return f, st.Size(), st.Size(), nil
	}
	// Build logs compress about tenfold with bzip2; the hint only sizes
	// multipart parts.
	return struct {
		io.Reader
		io.Closer
	}{bzip2.NewReader(f), f}, -1, st.Size() * 20, nil
}

// publishLog uploads the build log of sp unless the cache has it.
func (u *Uploader) publishLog(ctx context.Context, sp nix.StorePath, res *BuildResult) error {
	key := "log/" + sp.Base()
	if ok, err := u.cache.Has(ctx, key); err != nil {
		return err
	} else if ok {
		res.Log = LogPresent
		return nil
	}
	f, size, hint, err := u.logFile(sp)
	if errors.Is(err, fs.ErrNotExist) {
		res.Log = LogAbsent
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	counter := &countingReader{r: f}
	opt := PutOptions{ContentType: "text/plain; charset=utf-8", Size: size, SizeHint: hint}
	var body io.Reader = counter
	if ce, ok := u.cache.(ContentEncoder); ok && ce.ServesContentEncoding() {
		pr, pw := io.Pipe()
		go func() {
			zw := gzip.NewWriter(pw)
			_, err := io.Copy(zw, counter)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
			pw.CloseWithError(err)
		}()
		defer pr.Close()
		body = pr
		opt.ContentEncoding = "gzip"
		opt.Size, opt.SizeHint = -1, hint+hint/10+1024
	}
	if err := u.cache.Put(ctx, key, body, opt); err != nil {
		return err
	}
	res.Log = LogUploaded
	res.LogBytes = counter.n
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
