package nix

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/internal/testenv"
)

// checkListing walks l against the NAR bytes it was recorded with: every
// regular file's contents must sit at its narOffset, preceded by its size,
// and match the file on disk.
func checkListing(t *testing.T, nar []byte, ln *ListingNode, path string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	switch ln.Type {
	case NodeRegular:
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if ln.Size != uint64(len(want)) || ln.Executable != (fi.Mode()&0o100 != 0) {
			t.Errorf("%s: size %d executable %v; file has %d bytes, mode %v", path, ln.Size, ln.Executable, len(want), fi.Mode())
		}
		end := ln.NarOffset + ln.Size
		if ln.NarOffset < 8 || end > uint64(len(nar)) {
			t.Fatalf("%s: narOffset %d size %d outside the %d-byte NAR", path, ln.NarOffset, ln.Size, len(nar))
		}
		if !bytes.Equal(nar[ln.NarOffset:end], want) {
			t.Errorf("%s: NAR bytes at narOffset %d are not the file's contents", path, ln.NarOffset)
		}
		if got := narTokens(string(want)); !bytes.Equal(nar[ln.NarOffset-8:ln.NarOffset], got[:8]) {
			t.Errorf("%s: narOffset %d does not follow the contents length", path, ln.NarOffset)
		}
	case NodeDirectory:
		if !fi.IsDir() {
			t.Fatalf("%s: listed as a directory, is %v", path, fi.Mode())
		}
		names, err := os.ReadDir(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != len(ln.Entries) {
			t.Fatalf("%s: %d entries listed, %d on disk", path, len(ln.Entries), len(names))
		}
		for i := range ln.Entries {
			e := &ln.Entries[i]
			if i > 0 && ln.Entries[i-1].Name >= e.Name {
				t.Errorf("%s: entries out of order: %q before %q", path, ln.Entries[i-1].Name, e.Name)
			}
			checkListing(t, nar, &e.Node, filepath.Join(path, e.Name))
		}
	case NodeSymlink:
		target, err := os.Readlink(path)
		if err != nil || target != ln.Target {
			t.Errorf("%s: target %q, readlink says %q (%v)", path, ln.Target, target, err)
		}
	default:
		t.Errorf("%s: unknown node type %q", path, ln.Type)
	}
}

func TestDumpPathListing(t *testing.T) {
	root := buildFixtureTree(t)
	for _, p := range []string{
		root,
		filepath.Join(root, "names"),
		filepath.Join(root, "exec.sh"),
		filepath.Join(root, "empty"),
		filepath.Join(root, "emptydir"),
		filepath.Join(root, "rel-link"),
	} {
		name, _ := filepath.Rel(root, p)
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			l, err := DumpPathListing(&b, p)
			if err != nil {
				t.Fatal(err)
			}
			if want := dumpBytes(t, p); !bytes.Equal(b.Bytes(), want) {
				t.Fatalf("DumpPathListing wrote %d bytes that differ from DumpPath's %d", b.Len(), len(want))
			}
			checkListing(t, b.Bytes(), &l.Root, p)
			js, err := json.Marshal(l)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			var v map[string]any
			if err := json.Unmarshal(js, &v); err != nil {
				t.Fatalf("listing is not JSON: %v\n%s", err, js)
			}
			if v["version"] != 1.0 || v["root"] == nil {
				t.Errorf("listing lacks version 1 or root: %s", js)
			}
		})
	}
}

func TestDumpPathListingError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), bytes.Repeat([]byte("x"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if l, err := DumpPathListing(&failingWriter{left: 100}, dir); err == nil || l != nil {
		t.Errorf("DumpPathListing to a failing writer = %v, %v; want nil and an error", l, err)
	}
	if l, err := DumpPathListing(&bytes.Buffer{}, filepath.Join(dir, "missing")); err == nil || l != nil {
		t.Errorf("DumpPathListing of a missing path = %v, %v; want nil and an error", l, err)
	}
}

func TestListingMarshalJSON(t *testing.T) {
	tests := []struct {
		name string
		root ListingNode
		want string
	}{
		{"regular", ListingNode{Type: NodeRegular, Size: 6, NarOffset: 96},
			`{"version":1,"root":{"type":"regular","size":6,"narOffset":96}}`},
		{"executable", ListingNode{Type: NodeRegular, Size: 0, Executable: true, NarOffset: 120},
			`{"version":1,"root":{"type":"regular","size":0,"executable":true,"narOffset":120}}`},
		{"symlink", ListingNode{Type: NodeSymlink, Target: `a"b\c` + "\n\t\r\x01\x1f é\xff"},
			`{"version":1,"root":{"type":"symlink","target":"a\"b\\c\n\t\r\u0001\u001f é` + "\xff" + `"}}`},
		{"empty directory", ListingNode{Type: NodeDirectory},
			`{"version":1,"root":{"type":"directory","entries":{}}}`},
		{"directory", ListingNode{Type: NodeDirectory, Entries: []ListingEntry{
			{Name: "a", Node: ListingNode{Type: NodeRegular, Size: 1, NarOffset: 8}},
			{Name: "d", Node: ListingNode{Type: NodeDirectory, Entries: []ListingEntry{
				{Name: "l", Node: ListingNode{Type: NodeSymlink, Target: "../a"}},
			}}},
		}}, `{"version":1,"root":{"type":"directory","entries":{"a":{"type":"regular","size":1,"narOffset":8},` +
			`"d":{"type":"directory","entries":{"l":{"type":"symlink","target":"../a"}}}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Listing{Root: tt.root}
			got, err := l.MarshalJSON()
			if err != nil || string(got) != tt.want {
				t.Errorf("MarshalJSON = %s, %v\nwant %s", got, err, tt.want)
			}
		})
	}
}

// TestGoldenListing compares our listings with the .ls files Nix itself
// writes when copying to a file:// cache with write-nar-listing=1.
func TestGoldenListing(t *testing.T) {
	env := testenv.RequireNix(t)
	root := buildFixtureTree(t)
	for _, p := range []string{
		root,
		filepath.Join(root, "exec.sh"),
		filepath.Join(root, "read-only"),
		filepath.Join(root, "rel-link"),
		filepath.Join(root, "emptydir"),
	} {
		name, _ := filepath.Rel(root, p)
		t.Run(name, func(t *testing.T) {
			storePath := strings.TrimSpace(string(runNix(t, env, "nix-store", "--add", p)))
			sp, err := ParseStorePath(DefaultStoreDir, storePath)
			if err != nil {
				t.Fatalf("nix-store --add printed %q: %v", storePath, err)
			}
			cache := t.TempDir()
			runNix(t, env, "nix", "copy", "--to", "file://"+cache+"?write-nar-listing=1&compression=none", storePath)
			nixLS, err := os.ReadFile(filepath.Join(cache, sp.HashPart+".ls"))
			if err != nil {
				t.Fatalf("Nix wrote no listing: %v", err)
			}
			var nar bytes.Buffer
			l, err := DumpPathListing(&nar, p)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := l.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			if err := json.Unmarshal(nixLS, &want); err != nil {
				t.Fatalf("Nix's listing: %v", err)
			}
			if err := json.Unmarshal(ours, &got); err != nil {
				t.Fatalf("our listing: %v\n%s", err, ours)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("listing differs from Nix's\nours: %s\nNix:  %s", ours, nixLS)
			}
		})
	}
}
