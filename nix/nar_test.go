package nix

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// narTokens builds the expected NAR bytes for a list of tokens, from the
// format's definition: u64 little-endian length, bytes, zero padding to 8.
func narTokens(tokens ...string) []byte {
	var b bytes.Buffer
	for _, tok := range tokens {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(tok)))
		b.Write(n[:])
		b.WriteString(tok)
		b.Write(make([]byte, (8-len(tok)%8)%8))
	}
	return b.Bytes()
}

func dumpBytes(t *testing.T, path string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := DumpPath(&b, path); err != nil {
		t.Fatalf("DumpPath(%s): %v", path, err)
	}
	return b.Bytes()
}

func TestDumpPathFormat(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "b"), []byte("xyz"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b", filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	want := narTokens("nix-archive-1", "(", "type", "directory",
		"entry", "(", "name", "a", "node", "(", "type", "symlink", "target", "b", ")", ")",
		"entry", "(", "name", "b", "node", "(", "type", "regular", "executable", "", "contents", "xyz", ")", ")",
		"entry", "(", "name", "c", "node", "(", "type", "regular", "contents", "", ")", ")",
		")")
	if got := dumpBytes(t, dir); !bytes.Equal(got, want) {
		t.Errorf("DumpPath:\n%q\nwant\n%q", got, want)
	}
	// A symlink given as the root is archived as a link, not followed.
	want = narTokens("nix-archive-1", "(", "type", "symlink", "target", "b", ")")
	if got := dumpBytes(t, filepath.Join(dir, "a")); !bytes.Equal(got, want) {
		t.Errorf("DumpPath(symlink):\n%q\nwant\n%q", got, want)
	}
}

func TestDumpPathUnsupported(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct{ path, want string }{
		{fifo, "unsupported file type fifo"},
		{filepath.Join(dir, "sock"), "unsupported file type socket"},
		{dir, "unsupported file type"},
		{"/dev/null", "unsupported file type character device"},
	} {
		err := DumpPath(io.Discard, tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DumpPath(%s) error = %v, want one containing %q", tc.path, err, tc.want)
		}
	}
	if err := DumpPath(io.Discard, filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DumpPath(missing) error = %v, want fs.ErrNotExist", err)
	}
}

type failingWriter struct{ left int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errors.New("disk full")
	}
	w.left -= len(p)
	return len(p), nil
}

func TestDumpPathWriteError(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, left := range []int{0, 100, 200 << 10} {
		if err := DumpPath(&failingWriter{left: left}, dir); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("DumpPath with writer failing after %d bytes: error = %v", left, err)
		}
	}
}

type chunkCounter struct{ writes, bytes int }

func (c *chunkCounter) Write(p []byte) (int, error) {
	c.writes++
	c.bytes += len(p)
	return len(p), nil
}

// TestDumpPathBoundedMemory archives a large sparse file and checks that
// neither the file nor the archive is held in memory, and that the output is
// written in large chunks.
func TestDumpPathBoundedMemory(t *testing.T) {
	const size = 64 << 20
	path := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var c chunkCounter
	if err := DumpPath(&c, path); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("DumpPath of a %d-byte file allocated %d bytes", size, alloc)
	}
	if want := size + 13*8 + 8; c.bytes != want {
		t.Errorf("NAR is %d bytes, want %d", c.bytes, want)
	}
	if maxWrites := c.bytes/narBufferSize + 2; c.writes > maxWrites {
		t.Errorf("DumpPath made %d writes for %d bytes, want at most %d", c.writes, c.bytes, maxWrites)
	}
}

// BenchmarkDumpPath measures NAR throughput for one large file into a
// writer without ReadFrom, like a hash or compressor pipeline.
func BenchmarkDumpPath(b *testing.B) {
	const size = 64 << 20
	path := filepath.Join(b.TempDir(), "big")
	if err := os.WriteFile(path, bytes.Repeat([]byte("0123456789abcdef"), size/16), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		var c chunkCounter
		if err := DumpPath(&c, path); err != nil {
			b.Fatal(err)
		}
	}
}
