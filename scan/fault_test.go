package scan_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nixs3q/nixs3q/scan"
	"github.com/nixs3q/nixs3q/scan/scantest"
	"github.com/nixs3q/nixs3q/uploader"
)

var errInjected = errors.New("injected fault")

func TestScanFaults(t *testing.T) {
	f := newFixture(t)
	if err := f.w.PutCacheInfo(context.Background()); err != nil {
		t.Fatal(err)
	}
	leaf := newPath("leaf")
	top := newPath("top", leaf)
	var ps []*scantest.Path
	for i := range 20 {
		ps = append(ps, newPath(fmt.Sprintf("p%d", i)))
	}
	f.publish(t, append(ps, leaf, top)...)

	for _, tc := range []struct {
		name    string
		faulty  func() *scantest.Faulty
		wantErr error // nil: the scan succeeds
		check   func(t *testing.T, g *scan.Graph)
	}{
		{
			name: "a narinfo read fails",
			faulty: func() *scantest.Faulty {
				return &scantest.Faulty{BeforeGet: func(key string) error {
					if key == ps[7].HashPart+".narinfo" {
						return errInjected
					}
					return nil
				}}
			},
			wantErr: errInjected,
		},
		{
			name: "nix-cache-info read fails",
			faulty: func() *scantest.Faulty {
				return &scantest.Faulty{BeforeGet: func(key string) error {
					if key == "nix-cache-info" {
						return errInjected
					}
					return nil
				}}
			},
			wantErr: errInjected,
		},
		{
			name:    "the listing fails midway",
			faulty:  func() *scantest.Faulty { return &scantest.Faulty{FailListAfter: 5, ListErr: errInjected} },
			wantErr: errInjected,
		},
		{
			name: "a narinfo vanishes between listing and read",
			faulty: func() *scantest.Faulty {
				return &scantest.Faulty{BeforeGet: func(key string) error {
					if key == leaf.HashPart+".narinfo" {
						return fmt.Errorf("gone: %w", fs.ErrNotExist)
					}
					return nil
				}}
			},
			check: func(t *testing.T, g *scan.Graph) {
				if st := g.Stats(); st.Vanished != 1 || st.Missing != 1 {
					t.Errorf("Stats = %+v, want 1 vanished and 1 missing", st)
				}
				if n := g.Node(mustLookup(t, g, leaf)); n.State != scan.Missing {
					t.Errorf("vanished narinfo has state %v", n.State)
				}
			},
		},
		{
			name: "nix-cache-info is missing",
			faulty: func() *scantest.Faulty {
				return &scantest.Faulty{BeforeGet: func(key string) error {
					if key == "nix-cache-info" {
						return fs.ErrNotExist
					}
					return nil
				}}
			},
			check: func(t *testing.T, g *scan.Graph) {
				if g.CacheInfo().Present {
					t.Error("CacheInfo present")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := tc.faulty()
			fc.Cache = f.cache
			g, err := scan.Scan(context.Background(), fc, scan.Config{Concurrency: 4, TrustedKeys: nil}, nil)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || g != nil {
					t.Fatalf("Scan = %v, %v; want an error wrapping %v and no graph", g, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, g)
		})
	}
}

func TestScanCancelled(t *testing.T) {
	f := newFixture(t)
	for i := range 30 {
		f.publish(t, newPath(fmt.Sprintf("p%d", i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	fc := &scantest.Faulty{Cache: f.cache, BeforeGet: func(key string) error {
		if strings.HasSuffix(key, ".narinfo") {
			cancel()
		}
		return nil
	}}
	g, err := scan.Scan(ctx, fc, scan.Config{Concurrency: 2}, nil)
	if !errors.Is(err, context.Canceled) || g != nil {
		t.Fatalf("Scan = %v, %v; want context.Canceled", g, err)
	}
}

func TestScanBoundsConcurrencyAndReportsProgress(t *testing.T) {
	f := newFixture(t)
	const n = 120
	for i := range n {
		f.publish(t, newPath(fmt.Sprintf("p%d", i)))
	}
	fc := &scantest.Faulty{Cache: f.cache, BeforeGet: func(string) error {
		time.Sleep(2 * time.Millisecond)
		return nil
	}}
	var mu sync.Mutex
	var calls []scan.Progress
	cfg := scan.Config{Concurrency: 5, ProgressInterval: 5 * time.Millisecond, Progress: func(p scan.Progress) {
		mu.Lock()
		calls = append(calls, p)
		mu.Unlock()
	}}
	g, err := scan.Scan(context.Background(), fc, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.Stats().Valid != n {
		t.Errorf("%d valid narinfos, want %d", g.Stats().Valid, n)
	}
	if fc.MaxInFlight > 5 || fc.MaxInFlight < 2 {
		t.Errorf("at most %d reads in flight, want 2..5", fc.MaxInFlight)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) < 2 {
		t.Fatalf("%d progress calls, want periodic ones and a last one", len(calls))
	}
	last := calls[len(calls)-1]
	if !last.Done || last.Fetched != n || last.NarInfos != n || last.Listed != 2*n {
		t.Errorf("last progress = %+v", last)
	}
	for _, p := range calls[:len(calls)-1] {
		if p.Done || p.Fetched > p.NarInfos || p.NarInfos > p.Listed {
			t.Errorf("inconsistent progress %+v", p)
		}
	}
}

// synthetic is a read-only cache of n unsigned narinfos made up on the fly,
// each referring to the two before it, so that memory tests measure the
// graph and not the fixture.
type synthetic struct {
	uploader.Cache // nil: only List and Get are used
	n              int
	texts          map[string][]byte // narinfo key -> narinfo
}

func newSynthetic(t *testing.T, n int) *synthetic {
	s := &synthetic{n: n, texts: make(map[string][]byte, n)}
	w := &scantest.Writer{StoreDir: storeDir}
	for i := range n {
		p := s.path(i)
		ni, _, err := w.NarInfo(p)
		if err != nil {
			t.Fatal(err)
		}
		if s.texts[p.HashPart+".narinfo"], err = ni.MarshalText(); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *synthetic) path(i int) *scantest.Path {
	var refs []*scantest.Path
	for j := max(0, i-2); j < i; j++ {
		refs = append(refs, scantest.NewPath(storeDir, fmt.Sprintf("package-%d-1.0", j), []byte(fmt.Sprint(j))))
	}
	return scantest.NewPath(storeDir, fmt.Sprintf("package-%d-1.0", i), []byte(fmt.Sprint(i)), refs...)
}

func (s *synthetic) List(ctx context.Context, prefix string, fn func(uploader.Object) error) error {
	for key := range s.texts {
		if err := fn(uploader.Object{Key: key, Size: 500, LastModified: time.Now()}); err != nil {
			return err
		}
	}
	return nil
}

func (s *synthetic) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if key == "nix-cache-info" {
		return nil, fs.ErrNotExist
	}
	text, ok := s.texts[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(text)), nil
}

// TestScanMemory holds the graph of 10,000 narinfos and checks what it
// costs: the promise is tens of MiB for 100,000.
func TestScanMemory(t *testing.T) {
	const n = 10_000
	s := newSynthetic(t, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g, err := scan.Scan(context.Background(), s, scan.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if g.Stats().Valid != n || len(g.Incomplete()) != 0 {
		t.Fatalf("Stats = %+v", g.Stats())
	}
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("graph of %d narinfos: %d bytes each on the heap", n, per)
	if per > 1024 {
		t.Errorf("the graph takes %d bytes per narinfo, want at most 1 KiB", per)
	}
	runtime.KeepAlive(g)
	runtime.KeepAlive(s)
}
