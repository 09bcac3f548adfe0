package uploader

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// codec makes the compressed streams of one Compression setting. It is safe
// for concurrent use.
type codec struct {
	name string // narinfo Compression value
	ext  string // NAR key suffix after ".nar"

	zstdOpts []zstd.EOption
	zstdFree chan *zstd.Encoder // idle encoders, reused to spare their windows
	zstdAll  *zstd.Encoder      // for whole small NARs (EncodeAll), shared

	xzDictCap int
}

// compressWriter is one compressed stream. Close finishes the stream and
// flushes it to the underlying writer without closing that writer. After a
// failure, or instead of Close, Abandon releases the stream; nothing more is
// written to the underlying writer after Close or Abandon returns.
type compressWriter interface {
	io.Writer
	Close() error
	Abandon()
}

// xzDictCaps are the dictionary sizes of the xz presets 0..9, the bulk of an
// xz encoder's memory.
var xzDictCaps = [10]int{256 << 10, 1 << 20, 2 << 20, 4 << 20, 4 << 20, 8 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20}

// newCodec returns the codec for a validated, defaulted Config. At most
// poolSize idle zstd encoders are kept.
func newCodec(compression string, level, poolSize int) (*codec, error) {
	switch compression {
	case "none":
		return &codec{name: "none"}, nil
	case "xz":
		c := &codec{name: "xz", ext: ".xz", xzDictCap: xzDictCaps[6]}
		if level > 0 {
			c.xzDictCap = xzDictCaps[level]
		}
		return c, nil
	case "zstd":
		if level == 0 {
			level = 3
		}
		// One encoder goroutine per stream: uploads already run
		// Concurrency streams side by side, and an asynchronous encoder
		// (concurrency 2, one block compressed ahead of the writer) only
		// adds CPU when streams share the cores. Measured on 2 cores
		// (go run ./bench): zstd alone over 280 MiB of NARs in 4 streams,
		// 1.75 CPU-s instead of 2.5; the whole upload of them, 7% less
		// CPU; one 1 GiB NAR, no slower.
		c := &codec{
			name: "zstd",
			ext:  ".zst",
			zstdOpts: []zstd.EOption{
				zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
				zstd.WithEncoderConcurrency(1),
			},
			zstdFree: make(chan *zstd.Encoder, poolSize),
		}
		// EncodeAll is safe for concurrent use and keeps at most
		// poolSize block encoders (sized for the input, not for a
		// streaming window); callers beyond that wait for one.
		all, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithEncoderConcurrency(max(1, poolSize)), zstd.WithWindowSize(smallNARMax))
		if err != nil {
			return nil, fmt.Errorf("uploader: zstd: %w", err)
		}
		c.zstdAll = all
		return c, nil
	}
	return nil, fmt.Errorf("uploader: unknown compression %q", compression)
}

// compressAll compresses a whole small NAR (at most smallNARMax bytes) into
// one frame. ok is false for codecs without a one-shot form (xz), which
// then go through wrap.
func (c *codec) compressAll(nar []byte) (out []byte, ok bool) {
	switch c.name {
	case "none":
		return nar, true
	case "zstd":
		return c.zstdAll.EncodeAll(nar, make([]byte, 0, len(nar)/2+512)), true
	}
	return nil, false
}

// wrap starts a compressed stream writing to w.
func (c *codec) wrap(w io.Writer) (compressWriter, error) {
	switch c.name {
	case "none":
		return plainWriter{w}, nil
	case "xz":
		xw, err := xz.WriterConfig{DictCap: c.xzDictCap}.NewWriter(w)
		if err != nil {
			return nil, fmt.Errorf("uploader: xz: %w", err)
		}
		return xzWriter{xw}, nil
	}
	var enc *zstd.Encoder
	select {
	case enc = <-c.zstdFree:
		enc.Reset(w)
	default:
		var err error
		if enc, err = zstd.NewWriter(w, c.zstdOpts...); err != nil {
			return nil, fmt.Errorf("uploader: zstd: %w", err)
		}
	}
	return &zstdWriter{enc: enc, free: c.zstdFree}, nil
}

type plainWriter struct{ io.Writer }

func (plainWriter) Close() error { return nil }
func (plainWriter) Abandon()     {}

type xzWriter struct{ *xz.Writer }

func (xzWriter) Abandon() {}

type zstdWriter struct {
	enc  *zstd.Encoder
	free chan *zstd.Encoder
}

func (z *zstdWriter) Write(p []byte) (int, error) { return z.enc.Write(p) }

// Close finishes the frame and returns the encoder to the pool.
func (z *zstdWriter) Close() error {
	if err := z.enc.Close(); err != nil {
		return fmt.Errorf("uploader: zstd: %w", err)
	}
	select {
	case z.free <- z.enc:
	default:
	}
	z.enc = nil
	return nil
}

// Abandon waits for the encoder's pending writes and drops it: an encoder
// that failed midway is not reused.
func (z *zstdWriter) Abandon() {
	if z.enc != nil {
		z.enc.Reset(io.Discard)
		z.enc = nil
	}
}
