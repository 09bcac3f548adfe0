package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/nixs3q/nixs3q/nix"
)

// Inputs are made by real Nix from deterministic content (seeded PRNGs), so
// every run of the benchmark measures the same store paths. What was added
// once is remembered in the user's cache directory and reused while Nix
// still has it, which spares re-hashing a gigabyte on every run.

// cachedInputs returns the store paths recorded under name when Nix still
// has all of them, else runs gen and records its result.
func (e *env) cachedInputs(ctx context.Context, name string, gen func() ([]string, error)) ([]string, error) {
	dir, err := os.UserCacheDir()
	if err == nil {
		dir = filepath.Join(dir, "nixs3q", "bench")
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return gen()
	}
	file := filepath.Join(dir, name)
	if b, err := os.ReadFile(file); err == nil {
		paths := strings.Fields(string(b))
		if len(paths) > 0 {
			if _, err := e.nixCmd(ctx, nil, "nix-store", append([]string{"--check-validity"}, paths...)...); err == nil {
				return paths, nil
			}
		}
	}
	paths, err := gen()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, []byte(strings.Join(paths, "\n")+"\n"), 0o644); err != nil {
		e.logf("cannot remember inputs in %s: %v", file, err)
	}
	return paths, nil
}

// writeRandom writes n bytes of a PRNG stream seeded with seed to path.
func writeRandom(path string, n int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8(sha256.Sum256(fmt.Appendf(nil, "nixs3q-bench-%d", seed)))
	buf := make([]byte, 1<<20)
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		_, _ = rng.Read(chunk)
		if _, err := f.Write(chunk); err != nil {
			f.Close()
			return err
		}
		n -= int64(len(chunk))
	}
	return f.Close()
}

// words make generated text compress like build output: a small vocabulary
// in varied order, about 3:1 with zstd.
var words = strings.Fields(`the of build output derivation store path nix closure cache upload
	compile link object library include header warning error make install check test gcc ld
	configure phase patch source unpack fixup strip shrink rpath interpreter /nix/store bin lib
	share doc man info 0 1 2 3 4 5 6 7 8 9 x86_64-linux -O2 -fPIC -Wall CFLAGS LDFLAGS`)

// writeText writes about n bytes of generated text lines to path.
func writeText(path string, n int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(seed, 0x6e69787333))
	var line []byte
	for written := int64(0); written < n; {
		line = fmt.Appendf(line[:0], "%08d:", written)
		for range 4 + rng.IntN(10) {
			line = append(line, ' ')
			line = append(line, words[rng.IntN(len(words))]...)
		}
		line = append(line, '\n')
		if rem := n - written; int64(len(line)) > rem {
			line = line[:rem]
		}
		_, _ = w.Write(line)
		written += int64(len(line))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// addToStore runs one `nix-store --add` for files and returns their store
// paths in the same order.
func (e *env) addToStore(ctx context.Context, files []string) ([]string, error) {
	out, err := e.nixCmd(ctx, nil, "nix-store", append([]string{"--add"}, files...)...)
	if err != nil {
		return nil, err
	}
	paths := strings.Fields(string(out))
	if len(paths) != len(files) {
		return nil, fmt.Errorf("bench: nix-store --add of %d files printed %d paths", len(files), len(paths))
	}
	return paths, nil
}

// nixBuild builds the expression in file and returns its output path.
func (e *env) nixBuild(ctx context.Context, file string) (string, error) {
	out, err := e.nixCmd(ctx, nil, "nix-build", "--no-out-link", file)
	if err != nil {
		return "", err
	}
	p := strings.TrimSpace(string(out))
	if _, err := nix.ParseStorePath(nix.DefaultStoreDir, p); err != nil {
		return "", fmt.Errorf("bench: nix-build printed %q: %w", p, err)
	}
	return p, nil
}

// closure returns the closure of root, as nix-store -qR lists it.
func (e *env) closure(ctx context.Context, root string) ([]string, error) {
	out, err := e.nixCmd(ctx, nil, "nix-store", "-qR", root)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// closureInput builds a chain of n derivation outputs, each holding
// randBytes of random data and textBytes of text and referring to the one
// before it; the last is the root. It returns the root.
func (e *env) closureInput(ctx context.Context, tag string, n int, randBytes, textBytes int64) (string, error) {
	name := fmt.Sprintf("nixs3q-bench-closure-%s-%dx%d+%d", tag, n, randBytes, textBytes)
	paths, err := e.cachedInputs(ctx, name, func() ([]string, error) {
		e.logf("generating %s", name)
		data := filepath.Join(e.dir, "inputs", name)
		for i := range n {
			d := filepath.Join(data, fmt.Sprintf("p%02d", i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
			if err := writeRandom(filepath.Join(d, "random.bin"), randBytes, uint64(1000+i)); err != nil {
				return nil, err
			}
			if err := writeText(filepath.Join(d, "text.txt"), textBytes, uint64(2000+i)); err != nil {
				return nil, err
			}
		}
		added, err := e.addToStore(ctx, []string{data})
		os.RemoveAll(data)
		if err != nil {
			return nil, err
		}
		expr := fmt.Sprintf(`let
  data = builtins.storePath "%s";
  mk = prev: i: derivation {
    name = "%s-${toString i}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    inherit prev;
    args = [ "-c" "/bin/mkdir $out && /bin/cp -r ${data}/p${if i < 10 then "0" else ""}${toString i}/. $out/ && /bin/echo \"$prev\" > $out/prev" ];
  };
in builtins.foldl' mk "" (builtins.genList (i: i) %d)
`, added[0], name, n)
		file := filepath.Join(e.dir, name+".nix")
		if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
			return nil, err
		}
		root, err := e.nixBuild(ctx, file)
		if err != nil {
			return nil, err
		}
		return []string{root}, nil
	})
	if err != nil {
		return "", err
	}
	cl, err := e.closure(ctx, paths[0])
	if err != nil {
		return "", err
	}
	if len(cl) != n {
		return "", fmt.Errorf("bench: closure of %s has %d paths, want %d", paths[0], len(cl), n)
	}
	return paths[0], nil
}

// bigInput adds one file of size random bytes to the store.
func (e *env) bigInput(ctx context.Context, tag string, size int64) (string, error) {
	name := fmt.Sprintf("nixs3q-bench-big-%s-%d", tag, size)
	paths, err := e.cachedInputs(ctx, name, func() ([]string, error) {
		e.logf("generating %s", name)
		file := filepath.Join(e.dir, "inputs", name)
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return nil, err
		}
		defer os.Remove(file)
		if err := writeRandom(file, size, 3000); err != nil {
			return nil, err
		}
		return e.addToStore(ctx, []string{file})
	})
	if err != nil {
		return "", err
	}
	return paths[0], nil
}

// smallInputs adds n small files, each unique, to the store.
func (e *env) smallInputs(ctx context.Context, kind, tag string, n int) ([]string, error) {
	name := fmt.Sprintf("nixs3q-bench-%s-%s-%d", kind, tag, n)
	return e.cachedInputs(ctx, name, func() ([]string, error) {
		e.logf("generating %s", name)
		dir := filepath.Join(e.dir, "inputs", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		files := make([]string, n)
		for i := range n {
			files[i] = filepath.Join(dir, fmt.Sprintf("%s-%05d", name, i))
			text := fmt.Sprintf("nixs3q benchmark input %s number %d\n", name, i)
			if err := os.WriteFile(files[i], []byte(text), 0o644); err != nil {
				return nil, err
			}
		}
		return e.addToStore(ctx, files)
	})
}

// dedupInput adds n small paths and builds a root that refers to all of
// them; it returns the root, whose closure is the n paths and itself.
func (e *env) dedupInput(ctx context.Context, tag string, n int) (string, error) {
	leaves, err := e.smallInputs(ctx, "dedup", tag, n)
	if err != nil {
		return "", err
	}
	name := fmt.Sprintf("nixs3q-bench-dedup-root-%s-%d", tag, n)
	paths, err := e.cachedInputs(ctx, name, func() ([]string, error) {
		e.logf("generating %s", name)
		var b strings.Builder
		fmt.Fprintf(&b, "derivation {\n  name = %q;\n  system = builtins.currentSystem;\n  builder = \"/bin/sh\";\n", name)
		b.WriteString("  passAsFile = [ \"paths\" ];\n  args = [ \"-c\" \"/bin/cp $pathsPath $out\" ];\n  paths = builtins.concatStringsSep \"\\n\" [\n")
		for _, p := range leaves {
			fmt.Fprintf(&b, "    (builtins.storePath %q)\n", p)
		}
		b.WriteString("  ];\n}\n")
		file := filepath.Join(e.dir, name+".nix")
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		root, err := e.nixBuild(ctx, file)
		if err != nil {
			return nil, err
		}
		return []string{root}, nil
	})
	if err != nil {
		return "", err
	}
	return paths[0], nil
}

// fakeStore creates n empty files named like store paths in dir, for
// measures that only need the daemon to accept paths (it checks that they
// exist), and returns their paths.
func fakeStore(dir, tag string, n int) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	paths := make([]string, n)
	for i := range n {
		h := sha256.Sum256(fmt.Appendf(nil, "nixs3q-bench-fake-%s-%d", tag, i))
		paths[i] = filepath.Join(dir, nix.EncodeBase32(h[:20])+fmt.Sprintf("-bench-%s-%d", tag, i))
		f, err := os.Create(paths[i])
		if err != nil {
			return nil, err
		}
		f.Close()
	}
	return paths, nil
}
