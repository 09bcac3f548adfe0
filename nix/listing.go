package nix

import (
	"bytes"
	"strconv"
)

// NodeType is the type of a node in a NAR.
type NodeType string

// The node types of a NAR, spelled as in NAR listings.
const (
	NodeRegular   NodeType = "regular"
	NodeDirectory NodeType = "directory"
	NodeSymlink   NodeType = "symlink"
)

// Listing describes the file tree inside a NAR, as the "<hashpart>.ls"
// files Nix writes into binary caches with write-nar-listing=1 do. Make one
// with DumpPathListing; its JSON form (MarshalJSON) is Nix's.
type Listing struct {
	Root ListingNode
}

// ListingNode is one node of a Listing. Which fields are meaningful depends
// on Type: Size, Executable and NarOffset for regular files, Entries for
// directories, Target for symlinks.
type ListingNode struct {
	Type NodeType

	// Size is the length of a regular file's contents.
	Size uint64
	// Executable reports a regular file marked executable in the NAR.
	Executable bool
	// NarOffset is the byte offset of a regular file's contents within the
	// uncompressed NAR (also set for an empty file: where its contents
	// would start).
	NarOffset uint64

	// Entries are a directory's entries in bytewise order of their names,
	// the order of the NAR.
	Entries []ListingEntry

	// Target is a symlink's target, verbatim.
	Target string
}

// ListingEntry is a named entry of a directory in a Listing.
type ListingEntry struct {
	Name string
	Node ListingNode
}

// MarshalJSON returns the listing in the format of Nix's .ls files:
//
//	{"version":1,"root":NODE}
//
// where a NODE is {"type":"directory","entries":{NAME:NODE,...}},
// {"type":"regular","size":N,"executable":true,"narOffset":N} ("executable"
// only when true) or {"type":"symlink","target":T}. Strings are escaped as
// Nix escapes them: quotes, backslashes and control characters; other bytes,
// including any that are not UTF-8, are written as they are, so names and
// targets survive byte for byte. It never fails.
func (l *Listing) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"version":1,"root":`)
	l.Root.appendJSON(&b)
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (n *ListingNode) appendJSON(b *bytes.Buffer) {
	b.WriteString(`{"type":`)
	appendJSONString(b, string(n.Type))
	switch n.Type {
	case NodeRegular:
		b.WriteString(`,"size":`)
		b.WriteString(strconv.FormatUint(n.Size, 10))
		if n.Executable {
			b.WriteString(`,"executable":true`)
		}
		b.WriteString(`,"narOffset":`)
		b.WriteString(strconv.FormatUint(n.NarOffset, 10))
	case NodeDirectory:
		b.WriteString(`,"entries":{`)
		for i := range n.Entries {
			if i > 0 {
				b.WriteByte(',')
			}
			appendJSONString(b, n.Entries[i].Name)
			b.WriteByte(':')
			n.Entries[i].Node.appendJSON(b)
		}
		b.WriteByte('}')
	case NodeSymlink:
		b.WriteString(`,"target":`)
		appendJSONString(b, n.Target)
	}
	b.WriteByte('}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string literal, escaping only what
// JSON requires: quotes, backslashes and bytes below 0x20.
func appendJSONString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
