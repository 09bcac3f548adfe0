package main

import (
	"os"
	"path/filepath"
	"testing"
)

// push and retry follow links from what the user typed into the store, and
// stop once the path sits directly in the store directory: a store path
// that is itself a link to another store path stays itself.
func TestResolvePath(t *testing.T) {
	base := t.TempDir()
	store := filepath.Join(base, "store")
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(store, "aaaa-real")
	if err := os.WriteFile(real, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	linkInStore := filepath.Join(store, "bbbb-link")
	if err := os.Symlink(real, linkInStore); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	os.Mkdir(home, 0o755)
	mustLink := func(target, name string) string {
		t.Helper()
		p := filepath.Join(home, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	result := mustLink(linkInStore, "result")
	chain := mustLink(result, "chain")
	relative := mustLink("../store/aaaa-real", "relative")
	storeLink := mustLink(store, "mystore")

	for _, tc := range []struct{ in, want string }{
		{real, real},
		{linkInStore, linkInStore},
		{result, linkInStore},
		{chain, linkInStore},
		{relative, real},
		{filepath.Join(storeLink, "bbbb-link"), linkInStore},
		{filepath.Join(home, "missing"), filepath.Join(home, "missing")},
		{real + "/sub", real + "/sub"},
	} {
		if got := resolvePath(tc.in, store); got != tc.want {
			t.Errorf("resolvePath(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	// A relative argument resolves from the working directory.
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(home); err != nil {
		t.Fatal(err)
	}
	if got := resolvePath("./result", store); got != linkInStore {
		t.Errorf("resolvePath(./result) = %s, want %s", got, linkInStore)
	}
}
