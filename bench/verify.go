package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/nixs3q/nixs3q/nix"
)

// verifyNarinfos reads back the narinfo of every path in bucket over plain
// HTTP, as a Nix client would, and checks that it names the path and that
// its NAR exists; with signed, also that it carries a valid signature by
// the benchmark's key. It returns the number of narinfos checked.
func (e *env) verifyNarinfos(ctx context.Context, bucket string, paths []string, signed bool) (int, error) {
	base := e.httpURL(bucket)
	pub := e.key.Public()
	errs := make([]error, len(paths))
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				errs[i] = e.verifyOne(ctx, base, paths[i], pub, signed)
			}
		})
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return len(paths), nil
}

func (e *env) verifyOne(ctx context.Context, base, path string, pub nix.PublicKey, signed bool) error {
	sp, err := nix.ParseStorePath(nix.DefaultStoreDir, path)
	if err != nil {
		return err
	}
	body, ok, err := httpGet(ctx, e.http, base+"/"+sp.HashPart+".narinfo")
	if err != nil {
		return fmt.Errorf("bench: verify %s: %w", path, err)
	}
	if !ok {
		return fmt.Errorf("bench: verify: no narinfo for %s in %s", path, base)
	}
	ni, err := nix.ParseNarInfo(body)
	if err != nil {
		return fmt.Errorf("bench: verify %s: %w", path, err)
	}
	if ni.StorePath != path {
		return fmt.Errorf("bench: verify: narinfo %s.narinfo names %s", sp.HashPart, ni.StorePath)
	}
	if signed {
		fp, err := ni.Fingerprint(nix.DefaultStoreDir)
		if err != nil {
			return fmt.Errorf("bench: verify %s: %w", path, err)
		}
		valid := false
		for _, sig := range ni.Sigs {
			valid = valid || pub.Verify(fp, sig)
		}
		if !valid {
			return fmt.Errorf("bench: verify: narinfo of %s has no valid signature by %s", path, pub.Name)
		}
	}
	ok, err = httpHead(ctx, e.http, base+"/"+ni.URL)
	if err != nil {
		return fmt.Errorf("bench: verify %s: %w", path, err)
	}
	if !ok {
		return fmt.Errorf("bench: verify: NAR %s of %s is missing", ni.URL, path)
	}
	return nil
}
