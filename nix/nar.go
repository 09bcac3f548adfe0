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
	return d.dump(path, nil)
}

// DumpPathListing is DumpPath that also returns the listing of the NAR it
// wrote: the file tree with, for each regular file, its size, whether it is
// executable and the offset of its contents within the NAR. The listing is
// recorded while writing, in the same single walk of the tree; it holds
// every name and symlink target of the tree (never file contents), so its
// memory grows with the number of entries. On error the listing is nil and,
// as with DumpPath, a partial NAR may already have been written to w.
func DumpPathListing(w io.Writer, path string) (*Listing, error) {
	cw := &offsetWriter{w: w}
	d := narDumper{w: bufio.NewWriterSize(cw, narBufferSize), offsets: cw}
	l := &Listing{}
	if err := d.dump(path, &l.Root); err != nil {
		return nil, err
	}
	return l, nil
}

type narDumper struct {
	w       *bufio.Writer
	scratch [8]byte
	// offsets counts what left w's buffer; set only when a listing is being
	// recorded, so that DumpPath keeps writing straight to its writer.
	offsets *offsetWriter
}

// offsetWriter counts the bytes written through it.
type offsetWriter struct {
	w io.Writer
	n uint64
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	o.n += uint64(n)
	return n, err
}

// offset is the number of NAR bytes written so far, buffered ones included.
func (d *narDumper) offset() uint64 {
	return d.offsets.n + uint64(d.w.Buffered())
}

// dump writes the whole NAR of path, recording its listing into ln when ln
// is not nil.
func (d *narDumper) dump(path string, ln *ListingNode) error {
	d.str("nix-archive-1")
	if err := d.node(path, ln); err != nil {
		return err
	}
	if err := d.w.Flush(); err != nil {
		return fmt.Errorf("nix: dump %s: %w", path, err)
	}
	return nil
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

// node writes the NAR node of path; when ln is not nil it records the node
// there.
func (d *narDumper) node(path string, ln *ListingNode) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("nix: dump: %w", err)
	}
	d.str("(")
	d.str("type")
	switch mode := fi.Mode(); {
	case mode.IsRegular():
		d.str("regular")
		executable := mode&0o100 != 0
		if executable {
			d.str("executable")
			d.str("")
		}
		if ln != nil {
			ln.Type, ln.Executable = NodeRegular, executable
		}
		if err := d.contents(path, ln); err != nil {
			return err
		}
	case mode.IsDir():
		d.str("directory")
		if ln != nil {
			ln.Type = NodeDirectory
		}
		if err := d.dir(path, ln); err != nil {
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
		if ln != nil {
			ln.Type, ln.Target = NodeSymlink, target
		}
	default:
		return fmt.Errorf("nix: dump %s: %w %s (only regular files, directories and symlinks can be archived)", path, ErrUnsupportedFileType, fileType(mode))
	}
	d.str(")")
	return nil
}

// ErrUnsupportedFileType is wrapped by DumpPath's error for a FIFO, socket
// or device in the tree: no NAR can hold one, so retrying cannot help.
var ErrUnsupportedFileType = errors.New("unsupported file type")

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

// contents writes the contents of the regular file path; when ln is not nil
// it records their size and offset there.
func (d *narDumper) contents(path string, ln *ListingNode) error {
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
	if ln != nil {
		ln.Size, ln.NarOffset = size, d.offset()
	}
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

// dir writes the entries of the directory path; when ln is not nil it
// records them there, in NAR order.
func (d *narDumper) dir(path string, ln *ListingNode) error {
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
	var child *ListingNode
	if ln != nil {
		ln.Entries = make([]ListingEntry, len(names))
	}
	for i, name := range names {
		d.str("entry")
		d.str("(")
		d.str("name")
		d.str(name)
		d.str("node")
		if ln != nil {
			ln.Entries[i].Name = name
			child = &ln.Entries[i].Node
		}
		if err := d.node(filepath.Join(path, name), child); err != nil {
			return err
		}
		d.str(")")
	}
	return nil
}
