package nix

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// narBufferSize is the size of DumpPath's write buffer, which is also the
// chunk size file contents are copied in.
const narBufferSize = 64 << 10

// DumpPath writes the NAR serialisation of the file tree at path to w,
// byte-identical to `nix-store --dump path`.
//
// Directory entries are written in bytewise order of their names; a regular
// file is marked executable when its owner-execute bit is set; symlinks are
// written as links and never followed (path itself included). Sockets,
// devices and FIFOs make it fail. Memory use is bounded: file contents are
// streamed through one fixed-size buffer, and only the entry names of the
// directories on the current path are held. A file whose size changes while
// it is being read makes DumpPath fail rather than write a corrupt NAR.
//
// On error, a partial NAR may already have been written to w; the caller
// must discard it. DumpPath writes to w in large chunks and does not close it.
func DumpPath(w io.Writer, path string) error {
	d := narDumper{w: bufio.NewWriterSize(w, narBufferSize)}
	d.str("nix-archive-1")
	if err := d.node(path); err != nil {
		return err
	}
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("nix: dump %s: %w", path, err)
	}
	return nil
}

type narDumper struct {
	w       *bufio.Writer
	scratch [8]byte
}

// u64 writes n as a little-endian 64-bit integer. Write errors are sticky in
// bufio.Writer and are reported by the next Flush or ReadFrom.
func (d *narDumper) u64(n uint64) {
	binary.LittleEndian.PutUint64(d.scratch[:], n)
	d.w.Write(d.scratch[:])
}

// pad writes the zero bytes that align n bytes of data to 8.
func (d *narDumper) pad(n uint64) {
	if r := n % 8; r != 0 {
		clear(d.scratch[:])
		d.w.Write(d.scratch[:8-r])
	}
}

func (d *narDumper) str(s string) {
	d.u64(uint64(len(s)))
	d.w.WriteString(s)
	d.pad(uint64(len(s)))
}

func (d *narDumper) node(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("nix: dump: %w", err)
	}
	d.str("(")
	d.str("type")
	switch mode := fi.Mode(); {
	case mode.IsRegular():
		d.str("regular")
		if mode&0o100 != 0 {
			d.str("executable")
			d.str("")
		}
		if err := d.contents(path); err != nil {
			return err
		}
	case mode.IsDir():
		d.str("directory")
		if err := d.dir(path); err != nil {
			return err
		}
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return fmt.Errorf("nix: dump: %w", err)
		}
		d.str("symlink")
		d.str("target")
		d.str(target)
	default:
		return fmt.Errorf("nix: dump %s: unsupported file type %s (only regular files, directories and symlinks can be archived)", path, fileType(mode))
	}
	d.str(")")
	return nil
}

func fileType(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode&fs.ModeNamedPipe != 0:
		return "fifo"
	case mode&fs.ModeCharDevice != 0:
		return "character device"
	case mode&fs.ModeDevice != 0:
		return "block device"
	}
	return mode.Type().String()
}

func (d *narDumper) contents(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("nix: dump: %w", err)
	}
	defer f.Close()
	// Size from the open file, so that it describes what is read.
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("nix: dump: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("nix: dump %s: changed type while being archived", path)
	}
	size := uint64(fi.Size())
	d.str("contents")
	d.u64(size)
	n, err := d.w.ReadFrom(io.LimitReader(f, int64(size)))
	if err != nil {
		return fmt.Errorf("nix: dump %s: %w", path, err)
	}
	if uint64(n) != size {
		return fmt.Errorf("nix: dump %s: file shrank from %d to %d bytes while being archived", path, size, n)
	}
	var probe [1]byte
	if m, err := f.Read(probe[:]); m > 0 {
		return fmt.Errorf("nix: dump %s: file grew beyond %d bytes while being archived", path, size)
	} else if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("nix: dump %s: %w", path, err)
	}
	d.pad(size)
	return nil
}

func (d *narDumper) dir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("nix: dump: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("nix: dump: read directory %s: %w", path, err)
	}
	sort.Strings(names) // bytewise, as Nix orders entries
	for _, name := range names {
		d.str("entry")
		d.str("(")
		d.str("name")
		d.str(name)
		d.str("node")
		if err := d.node(filepath.Join(path, name)); err != nil {
			return err
		}
		d.str(")")
	}
	return nil
}
