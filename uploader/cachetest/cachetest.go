package cachetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/uploader"
)

// Sizes used by the suite. The caller configures backends with a part size
// of at most PartSize so that LargeSize needs several parts.
const (
	PartSize  = 5 << 20
	LargeSize = 20 << 20
	// failAfter is where a failing body breaks: past the first part, so a
	// multipart upload has begun.
	failAfter = PartSize + 3<<20
)

// errBody is the failure injected into bodies.
var errBody = errors.New("cachetest: injected body failure")

// Run checks newCache's backend against the uploader.Cache contract. Each
// subtest gets a fresh, empty cache from newCache.
func Run(t *testing.T, newCache func(t *testing.T) uploader.Cache) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c uploader.Cache)
	}{
		{"MissingKey", testMissingKey},
		{"RoundTrip", testRoundTrip},
		{"EmptyBody", testEmptyBody},
		{"Overwrite", testOverwrite},
		{"FailingBodyCommitsNothing", testFailingBody},
		{"FailingBodyKeepsOldObject", testFailingBodyOverwrite},
		{"WrongSizeCommitsNothing", testWrongSize},
		{"CancelledContextCommitsNothing", testCancelled},
		{"StreamingLargeBody", testStreamingLarge},
		{"ConcurrentPuts", testConcurrent},
		{"InvalidKeys", testInvalidKeys},
		{"String", testString},
		{"List", testList},
		{"ListManyPages", testListMany},
		{"ListStops", testListStops},
		{"Delete", testDelete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newCache(t))
		})
	}
}

func testMissingKey(t *testing.T, c uploader.Cache) {
	for _, key := range []string{"0123456789abcdfghijklmnpqrsvwxyz.narinfo", "nar/missing.nar.zst", "nix-cache-info"} {
		requireAbsent(t, c, key)
	}
}

func testRoundTrip(t *testing.T, c uploader.Cache) {
	for _, tc := range []struct {
		key  string
		body []byte
		opt  uploader.PutOptions
	}{
		{"nix-cache-info", []byte("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"), uploader.PutOptions{ContentType: "text/x-nix-cache-info"}},
		{"0123456789abcdfghijklmnpqrsvwxyz.narinfo", []byte("StorePath: /nix/store/0123456789abcdfghijklmnpqrsvwxyz-x\n"), uploader.PutOptions{ContentType: "text/x-nix-narinfo"}},
		{"nar/1b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar.zst", randomBytes(1, 300<<10), uploader.PutOptions{ContentType: "application/x-nix-nar", SizeHint: 1 << 20}},
	} {
		tc.opt.Size = int64(len(tc.body))
		mustPut(t, c, tc.key, bytes.NewReader(tc.body), tc.opt)
		requireContent(t, c, tc.key, tc.body)
	}
}

func testEmptyBody(t *testing.T, c uploader.Cache) {
	mustPut(t, c, "nar/empty", bytes.NewReader(nil), uploader.PutOptions{Size: 0})
	requireContent(t, c, "nar/empty", nil)
	mustPut(t, c, "nar/empty-stream", onlyReader{bytes.NewReader(nil)}, uploader.PutOptions{Size: -1})
	requireContent(t, c, "nar/empty-stream", nil)
}

func testOverwrite(t *testing.T, c uploader.Cache) {
	first, second := randomBytes(2, 4096), randomBytes(3, 1000)
	mustPut(t, c, "x.narinfo", bytes.NewReader(first), uploader.PutOptions{Size: int64(len(first))})
	mustPut(t, c, "x.narinfo", bytes.NewReader(second), uploader.PutOptions{Size: int64(len(second))})
	requireContent(t, c, "x.narinfo", second)
}

// failingBody yields n pseudo-random bytes, then errBody; never io.EOF.
func failingBody(n int64) io.Reader {
	return io.MultiReader(io.LimitReader(newRandReader(4), n), errReader{})
}

func testFailingBody(t *testing.T, c uploader.Cache) {
	for _, tc := range []struct {
		name string
		n    int64
		opt  uploader.PutOptions
	}{
		{"BeforeFirstPart", 1 << 20, uploader.PutOptions{Size: -1}},
		{"AfterFirstPart", failAfter, uploader.PutOptions{Size: -1, SizeHint: LargeSize}},
		{"KnownSize", failAfter, uploader.PutOptions{Size: LargeSize}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "nar/failing-" + tc.name + ".nar.zst"
			err := c.Put(context.Background(), key, failingBody(tc.n), tc.opt)
			if !errors.Is(err, errBody) {
				t.Fatalf("Put with failing body = %v, want an error wrapping %v", err, errBody)
			}
			requireAbsent(t, c, key)
		})
	}
}

func testFailingBodyOverwrite(t *testing.T, c uploader.Cache) {
	old := randomBytes(5, 64<<10)
	mustPut(t, c, "nar/kept.nar", bytes.NewReader(old), uploader.PutOptions{Size: int64(len(old))})
	for _, n := range []int64{1 << 10, failAfter} {
		err := c.Put(context.Background(), "nar/kept.nar", failingBody(n), uploader.PutOptions{Size: -1, SizeHint: LargeSize})
		if !errors.Is(err, errBody) {
			t.Fatalf("Put with body failing after %d bytes = %v, want an error wrapping %v", n, err, errBody)
		}
		requireContent(t, c, "nar/kept.nar", old)
	}
}

func testWrongSize(t *testing.T, c uploader.Cache) {
	body := randomBytes(6, 1000)
	for _, size := range []int64{999, 1001, 0} {
		key := fmt.Sprintf("nar/wrong-size-%d", size)
		err := c.Put(context.Background(), key, onlyReader{bytes.NewReader(body)}, uploader.PutOptions{Size: size})
		if err == nil {
			t.Errorf("Put of %d bytes declared as %d succeeded, want an error", len(body), size)
		}
		requireAbsent(t, c, key)
	}
}

func testCancelled(t *testing.T, c uploader.Cache) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body := randomBytes(7, 1000)
	err := c.Put(ctx, "cancelled.narinfo", bytes.NewReader(body), uploader.PutOptions{Size: int64(len(body))})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put with cancelled context = %v, want an error wrapping context.Canceled", err)
	}
	requireAbsent(t, c, "cancelled.narinfo")
}

func testStreamingLarge(t *testing.T, c uploader.Cache) {
	const key = "nar/0xk6wq9m3cf0l4s8h5gyhv0dkkzrbn2mqnqpgh8nqaz6csl8hzbh.nar.zst"
	want := sha256.New()
	body := io.TeeReader(io.LimitReader(newRandReader(8), LargeSize), want)
	mustPut(t, c, key, onlyReader{body}, uploader.PutOptions{Size: -1, ContentType: "application/x-nix-nar"})

	r, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer r.Close()
	got := sha256.New()
	n, err := io.Copy(got, r)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	if n != LargeSize || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("Get(%s) returned %d bytes with sha256 %x, want %d bytes with sha256 %x", key, n, got.Sum(nil), LargeSize, want.Sum(nil))
	}
}

func testConcurrent(t *testing.T, c uploader.Cache) {
	const workers = 8
	bodies := make([][]byte, workers)
	for i := range bodies {
		bodies[i] = randomBytes(uint64(100+i), 32<<10+i)
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i := range workers {
		wg.Go(func() {
			key := fmt.Sprintf("nar/concurrent-%d.nar", i)
			errs[i] = c.Put(context.Background(), key, bytes.NewReader(bodies[i]), uploader.PutOptions{Size: -1})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Put %d: %v", i, err)
		}
		requireContent(t, c, fmt.Sprintf("nar/concurrent-%d.nar", i), bodies[i])
	}
}

func testInvalidKeys(t *testing.T, c uploader.Cache) {
	for _, key := range []string{"", "/etc/passwd", "../escape", "nar/../../escape", "nar//x", "nar/", "./x"} {
		if err := c.Put(context.Background(), key, bytes.NewReader([]byte("x")), uploader.PutOptions{Size: 1}); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", key)
		}
		if _, err := c.Has(context.Background(), key); err == nil {
			t.Errorf("Has(%q) succeeded, want an error", key)
		}
		if r, err := c.Get(context.Background(), key); err == nil {
			r.Close()
			t.Errorf("Get(%q) succeeded, want an error", key)
		}
	}
}

func testString(t *testing.T, c uploader.Cache) {
	if c.String() == "" {
		t.Error("String() is empty")
	}
}

// listKeys lists prefix and returns the keys with their objects.
func listKeys(t *testing.T, c uploader.Cache, prefix string) map[string]uploader.Object {
	t.Helper()
	got := make(map[string]uploader.Object)
	err := c.List(context.Background(), prefix, func(o uploader.Object) error {
		if _, dup := got[o.Key]; dup {
			t.Errorf("List(%q) reported %s twice", prefix, o.Key)
		}
		got[o.Key] = o
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

func testList(t *testing.T, c uploader.Cache) {
	objects := map[string]int{
		"nix-cache-info": 40,
		"0123456789abcdfghijklmnpqrsvwxyz.narinfo":                         300,
		"1123456789abcdfghijklmnpqrsvwxyz.narinfo":                         301,
		"1123456789abcdfghijklmnpqrsvwxyz.ls":                              17,
		"nar/1b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar.zst": 5000,
		"nar/2b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar":     0,
		"log/0123456789abcdfghijklmnpqrsvwxyz-hello.drv":                   99,
	}
	before := time.Now().Add(-time.Hour)
	for key, size := range objects {
		mustPut(t, c, key, bytes.NewReader(randomBytes(uint64(size), size)), uploader.PutOptions{Size: int64(size)})
	}
	after := time.Now().Add(time.Hour)
	// A failed write leaves nothing that List reports.
	if err := c.Put(context.Background(), "nar/failed.nar", failingBody(1<<10), uploader.PutOptions{Size: -1}); err == nil {
		t.Fatal("Put with a failing body succeeded")
	}

	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"nix-cache-info", "0123456789abcdfghijklmnpqrsvwxyz.narinfo", "1123456789abcdfghijklmnpqrsvwxyz.narinfo",
			"1123456789abcdfghijklmnpqrsvwxyz.ls", "nar/1b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar.zst",
			"nar/2b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar", "log/0123456789abcdfghijklmnpqrsvwxyz-hello.drv"}},
		{"nar/", []string{"nar/1b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar.zst", "nar/2b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar"}},
		{"nar/1", []string{"nar/1b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar.zst"}},
		{"1123456789abcdfghijklmnpqrsvwxyz.", []string{"1123456789abcdfghijklmnpqrsvwxyz.narinfo", "1123456789abcdfghijklmnpqrsvwxyz.ls"}},
		{"na", []string{"nar/1b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar.zst", "nar/2b3nvl0w0p7fkbpz6rdqyyq4z5hiv3yzyk4j1ph5qkjd0aq1cl8g.nar"}},
		{"log/", []string{"log/0123456789abcdfghijklmnpqrsvwxyz-hello.drv"}},
		{"realisations/", nil},
		{"zzz", nil},
	} {
		got := listKeys(t, c, tc.prefix)
		if len(got) != len(tc.want) {
			t.Errorf("List(%q) = %d objects %v, want %d %v", tc.prefix, len(got), keysOf(got), len(tc.want), tc.want)
		}
		for _, key := range tc.want {
			o, ok := got[key]
			switch {
			case !ok:
				t.Errorf("List(%q) lacks %s", tc.prefix, key)
			case o.Size != int64(objects[key]):
				t.Errorf("List(%q): %s has size %d, want %d", tc.prefix, key, o.Size, objects[key])
			case o.LastModified.Before(before) || o.LastModified.After(after):
				t.Errorf("List(%q): %s last modified %v, want about now", tc.prefix, key, o.LastModified)
			}
		}
	}
	for _, prefix := range []string{"/", "../", "nar//", "/etc"} {
		if err := c.List(context.Background(), prefix, func(uploader.Object) error { return nil }); err == nil {
			t.Errorf("List(%q) succeeded, want an error", prefix)
		}
	}
}

func keysOf(m map[string]uploader.Object) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// testListMany crosses S3's 1,000-key page boundary.
func testListMany(t *testing.T, c uploader.Cache) {
	const n = 1234
	keys := make(chan string)
	var wg sync.WaitGroup
	var failed sync.Once
	for range 8 {
		wg.Go(func() {
			for key := range keys {
				if err := c.Put(context.Background(), key, bytes.NewReader([]byte(key)), uploader.PutOptions{Size: int64(len(key))}); err != nil {
					failed.Do(func() { t.Errorf("Put(%s): %v", key, err) })
				}
			}
		})
	}
	for i := range n {
		keys <- fmt.Sprintf("many/%05d.narinfo", i)
	}
	close(keys)
	wg.Wait()
	mustPut(t, c, "other.narinfo", bytes.NewReader(nil), uploader.PutOptions{Size: 0})
	got := listKeys(t, c, "many/")
	if len(got) != n {
		t.Fatalf("List(many/) reported %d objects, want %d", len(got), n)
	}
	for i := range n {
		key := fmt.Sprintf("many/%05d.narinfo", i)
		if o, ok := got[key]; !ok || o.Size != int64(len(key)) {
			t.Fatalf("List(many/): %s = %+v, %v; want size %d", key, o, ok, len(key))
		}
	}
	if all := listKeys(t, c, ""); len(all) != n+1 {
		t.Fatalf("List(\"\") reported %d objects, want %d", len(all), n+1)
	}
}

func testListStops(t *testing.T, c uploader.Cache) {
	for i := range 5 {
		key := fmt.Sprintf("stop/%d", i)
		mustPut(t, c, key, bytes.NewReader([]byte("x")), uploader.PutOptions{Size: 1})
	}
	stop := errors.New("cachetest: stop")
	calls := 0
	err := c.List(context.Background(), "stop/", func(uploader.Object) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 {
		t.Fatalf("List with fn failing on the 2nd object = %v after %d calls, want %v unwrapped after 2", err, calls, stop)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.List(ctx, "stop/", func(uploader.Object) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with a cancelled context = %v, want an error wrapping context.Canceled", err)
	}
}

func testDelete(t *testing.T, c uploader.Cache) {
	mustPut(t, c, "nar/gone.nar.zst", bytes.NewReader([]byte("bye")), uploader.PutOptions{Size: 3})
	mustPut(t, c, "gone.narinfo", bytes.NewReader([]byte("bye")), uploader.PutOptions{Size: 3})
	mustPut(t, c, "kept.narinfo", bytes.NewReader([]byte("hi")), uploader.PutOptions{Size: 2})
	for _, key := range []string{"nar/gone.nar.zst", "gone.narinfo"} {
		if err := c.Delete(context.Background(), key); err != nil {
			t.Fatalf("Delete(%s): %v", key, err)
		}
		requireAbsent(t, c, key)
	}
	requireContent(t, c, "kept.narinfo", []byte("hi"))
	if got := listKeys(t, c, ""); len(got) != 1 {
		t.Fatalf("after deleting two of three objects List reports %v, want only kept.narinfo", keysOf(got))
	}
	if err := c.Delete(context.Background(), "never-there.narinfo"); err != nil {
		t.Fatalf("Delete of a missing key = %v, want nil", err)
	}
	for _, key := range []string{"", "/etc/passwd", "../escape", "nar/../../escape", "nar/"} {
		if err := c.Delete(context.Background(), key); err == nil {
			t.Errorf("Delete(%q) succeeded, want an error", key)
		}
	}
	requireContent(t, c, "kept.narinfo", []byte("hi"))
}

func mustPut(t *testing.T, c uploader.Cache, key string, body io.Reader, opt uploader.PutOptions) {
	t.Helper()
	if err := c.Put(context.Background(), key, body, opt); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func requireAbsent(t *testing.T, c uploader.Cache, key string) {
	t.Helper()
	ok, err := c.Has(context.Background(), key)
	if err != nil || ok {
		t.Fatalf("Has(%s) = %v, %v; want false, nil", key, ok, err)
	}
	r, err := c.Get(context.Background(), key)
	if err == nil {
		r.Close()
		t.Fatalf("Get(%s) succeeded for a missing key", key)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get(%s) = %v, want an error wrapping fs.ErrNotExist", key, err)
	}
	if _, listed := listKeys(t, c, key)[key]; listed {
		t.Fatalf("List(%s) reports a missing key", key)
	}
}

func requireContent(t *testing.T, c uploader.Cache, key string, want []byte) {
	t.Helper()
	ok, err := c.Has(context.Background(), key)
	if err != nil || !ok {
		t.Fatalf("Has(%s) = %v, %v; want true, nil", key, ok, err)
	}
	r, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s) returned %d bytes (sha256 %x), want %d bytes (sha256 %x)",
			key, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// onlyReader hides every method but Read, as a pipe from a compressor would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBody }

// randReader is an endless deterministic pseudo-random stream, which no
// backend can compress or deduplicate away.
type randReader struct{ rng *rand.ChaCha8 }

func newRandReader(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return randReader{rand.NewChaCha8(s)}
}

func (r randReader) Read(p []byte) (int, error) { return r.rng.Read(p) }

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(newRandReader(seed), b); err != nil {
		panic(err)
	}
	return b
}
