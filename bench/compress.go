package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/nixs3q/nixs3q/nix"
)

// compressStreams is how many NARs the daemon compresses at once by
// default (its --workers, the uploader's Concurrency).
const compressStreams = 4

// dumpNARs serialises each path with nixs3q's NAR writer, into memory.
func dumpNARs(paths []string) ([][]byte, error) {
	nars := make([][]byte, len(paths))
	for i, p := range paths {
		var b bytes.Buffer
		if err := nix.DumpPath(&b, p); err != nil {
			return nil, fmt.Errorf("bench: dump %s: %w", p, err)
		}
		nars[i] = b.Bytes()
	}
	return nars, nil
}

// compressAlone times zstd over nars with the encoder settings of the
// uploader's codec (uploader/compress.go: zstd level 3, one encoder
// goroutine per stream, encoders reused), streams NARs at once, output
// discarded: the floor an upload of the same NARs could reach if hashing
// and sending cost nothing.
func compressAlone(nars [][]byte, streams int) (time.Duration, error) {
	opts := []zstd.EOption{
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(3)),
		zstd.WithEncoderConcurrency(1),
	}
	encs := make([]*zstd.Encoder, streams)
	for i := range encs {
		enc, err := zstd.NewWriter(io.Discard, opts...)
		if err != nil {
			return 0, err
		}
		encs[i] = enc
	}
	next := make(chan []byte)
	errs := make([]error, streams)
	var wg sync.WaitGroup
	start := time.Now()
	for i, enc := range encs {
		wg.Go(func() {
			for nar := range next {
				enc.Reset(io.Discard)
				if _, err := enc.Write(nar); err != nil {
					errs[i] = err
					continue
				}
				if err := enc.Close(); err != nil {
					errs[i] = err
				}
			}
		})
	}
	for _, nar := range nars {
		next <- nar
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, fmt.Errorf("bench: zstd: %w", err)
		}
	}
	return took, nil
}
