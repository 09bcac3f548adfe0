//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nixs3q/nixs3q/nix"
)

// gcExprText builds generations of small closures that share dependencies:
// app-G -> tool-T -> base, and live-I -> olddep, base for the tests with
// builders publishing while gc runs. chain-N is a chain of N paths.
const gcExprText = `{ nonce }:
let
  mk = name: script: derivation {
    inherit name nonce;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
  };
  base = mk "gc-base" ''/bin/echo "base $nonce" > $out'';
  tool = t: mk "gc-tool-${t}" ''/bin/echo "tool ${t} $nonce ${base}" > $out'';
  app = g: t: mk "gc-app-${g}" ''/bin/echo "app ${g} $nonce ${tool t}" > $out'';
  olddep = mk "gc-olddep" ''/bin/echo "olddep $nonce" > $out'';
  live = i: mk "gc-live-${toString i}" ''/bin/echo "live ${toString i} $nonce ${olddep} ${base}" > $out'';
  chain = n: if n == 0 then base else mk "gc-chain-${toString n}" ''/bin/echo "chain ${toString n} $nonce ${chain (n - 1)}" > $out'';
in {
  g1 = app "1" "a";
  g2 = app "2" "b";
  g3 = app "3" "b";
  g4 = app "4" "c";
  g5 = app "5" "d";
  olddep = olddep;
  live = builtins.genList live 9;
  chain = chain 12;
  keep = app "keep" "k";
}
`

// gcBuild builds attr of gcExprText with the hook of daemon d and waits
// until d has published it.
func gcBuild(t *testing.T, ctx context.Context, n *nixTool, d *daemonProc, nonce, attr string) []string {
	t.Helper()
	file := filepath.Join(n.dir, "gc.nix")
	if err := os.WriteFile(file, []byte(gcExprText), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := n.try(ctx, []string{"NIXS3Q_SOCKET=" + d.opts.socket, "NIXS3Q_STATE_DIR=" + d.opts.stateDir},
		"nix-build", file, "--argstr", "nonce", nonce, "-A", attr, "--no-out-link",
		"--option", "post-build-hook", bin.hook)
	if err != nil {
		t.Fatalf("nix-build -A %s: %v\n%s", attr, err, errOut)
	}
	waitDrained(t, ctx, d.opts.socket, 2*time.Minute)
	paths := strings.Fields(out)
	t.Cleanup(func() { n.deletePaths(t, paths) })
	return paths
}

// gcRun runs `nixs3q gc` (or pin, pins...) against the bucket with the
// server's credentials and returns stdout, stderr and the exit code.
func gcRun(ctx context.Context, srv *s3Server, n *nixTool, extraEnv []string, args ...string) (string, string, int) {
	cmd := exec.CommandContext(ctx, bin.nixs3q, args...)
	cmd.Env = append(srv.daemonEnv(n), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		if code < 0 {
			code = -1 // killed by a signal
		}
	} else if err != nil {
		code = -2
	}
	return stdout.String(), stderr.String(), code
}

// gcReport is the part of `nixs3q gc --json` the tests read.
type gcReport struct {
	DryRun                                     bool
	Deleted                                    struct{ Narinfos, Nars, Listings struct{ Objects int64 } }
	Kept                                       struct{ Narinfos struct{ Objects int64 } }
	Recent, Roots, Pinned, Restored, Retracted int
	Error                                      string
}

func runGCJSON(t *testing.T, ctx context.Context, srv *s3Server, n *nixTool, store string, args ...string) gcReport {
	t.Helper()
	defer timed(t, "nixs3q gc "+strings.Join(args, " "))()
	out, errOut, code := gcRun(ctx, srv, n, nil, append([]string{"gc", "--store", store, "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("nixs3q gc exited %d:\n%s\n%s", code, out, errOut)
	}
	var r gcReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("gc report: %v\n%s", err, out)
	}
	return r
}

// gcNarinfoKey is the narinfo key of a store path.
func gcNarinfoKey(t *testing.T, p string) string {
	t.Helper()
	sp, err := nix.ParseStorePath(storeDir, p)
	if err != nil {
		t.Fatal(err)
	}
	return sp.HashPart + ".narinfo"
}

// objectsOfPaths returns the narinfo, listing and NAR keys of paths, as the
// cache holds them.
func objectsOfPaths(t *testing.T, cc cacheContents, paths []string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		ni := cc.narinfos[p]
		if ni == nil {
			t.Fatalf("%s is not in the cache", p)
		}
		k := gcNarinfoKey(t, p)
		out = append(out, k, strings.TrimSuffix(k, ".narinfo")+".ls", ni.URL)
	}
	return out
}

// verifyClean requires `nixs3q verify` to find no problem in the cache.
func verifyClean(t *testing.T, ctx context.Context, srv *s3Server, n *nixTool, store string, key keyPair) {
	t.Helper()
	r := runVerify(t, ctx, srv.daemonEnv(n), "--store", store, "--json", "--trusted-public-key", key.public.String())
	if r.code != 0 {
		t.Errorf("nixs3q verify exited %d: problems %v\n%s", r.code, reportProblems(t, r.stdout), r.stderr)
	}
}

// afterCutoff waits until the bucket's clock has moved past a cutoff it
// returns, so that what is uploaded before counts as old and what is
// uploaded after as recent.
func afterCutoff() string {
	time.Sleep(1100 * time.Millisecond)
	cutoff := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond)
	return cutoff.Format(time.RFC3339Nano)
}

// TestGCGenerations: generations of closures sharing dependencies; old ones
// made old by a cutoff between uploads; one pinned, one pushed again
// (re-asserted). gc deletes exactly what no kept closure needs, the dry run
// predicts it and changes nothing, and Nix substitutes every kept closure.
func TestGCGenerations(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-gc")
	key := n.generateKey(t, ctx, "e2e-gc-1")
	store := "s3://e2e-gc?endpoint=http://" + srv.host + "&region=us-east-1&write-nar-listing=1"
	d := startDaemon(t, newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n)))
	nonce := newNonce(t)

	g1 := gcBuild(t, ctx, n, d, nonce, "g1") // pushed again later: re-asserted
	g2 := gcBuild(t, ctx, n, d, nonce, "g2") // pinned
	g3 := gcBuild(t, ctx, n, d, nonce, "g3") // old; shares tool-b with g2
	g5 := gcBuild(t, ctx, n, d, nonce, "g5") // old; its own tool-d
	cutoff := afterCutoff()
	g4 := gcBuild(t, ctx, n, d, nonce, "g4") // recent
	// A new daemon (empty presence cache) is pushed g1 again: it finds it in
	// the cache and re-asserts it.
	d.stop()
	d2 := startDaemon(t, newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n)))
	push(t, ctx, d2.opts.socket, g1...)
	waitDrained(t, ctx, d2.opts.socket, time.Minute)
	if out, errOut, code := gcRun(ctx, srv, n, nil, "pin", "--store", store, "--name", "prod", g2[0]); code != 0 {
		t.Fatalf("nixs3q pin: %d\n%s%s", code, out, errOut)
	}
	out, _, code := gcRun(ctx, srv, n, nil, "pins", "--store", store)
	if code != 0 || !strings.Contains(out, "prod\t") || !strings.Contains(out, g2[0]) {
		t.Fatalf("nixs3q pins: %d %q", code, out)
	}

	before := verifyCache(t, ctx, bucket, key.public)
	all := append(append(append(append(n.closure(t, ctx, g1), n.closure(t, ctx, g2)...), n.closure(t, ctx, g3)...), n.closure(t, ctx, g4)...), n.closure(t, ctx, g5)...)
	slices.Sort(all)
	all = slices.Compact(all)
	var keptPaths []string
	for _, r := range [][]string{g1, g2, g4} {
		keptPaths = append(keptPaths, n.closure(t, ctx, r)...)
	}
	slices.Sort(keptPaths)
	keptPaths = slices.Compact(keptPaths)
	var gone []string
	for _, p := range all {
		if !slices.Contains(keptPaths, p) {
			gone = append(gone, p)
		}
	}
	// app-3, app-5 and tool-d.
	if len(gone) != 3 {
		t.Fatalf("test setup: %d paths to collect, want 3: %v", len(gone), gone)
	}
	goneKeys := objectsOfPaths(t, before, gone)

	dry := runGCJSON(t, ctx, srv, n, store, "--keep-since", cutoff, "--settle", "0", "--dry-run")
	if got := bucket.list(t, ctx); !slices.Equal(got, before.keys) {
		t.Fatalf("the dry run changed the bucket")
	}
	rep := runGCJSON(t, ctx, srv, n, store, "--keep-since", cutoff, "--settle", "0")
	for _, r := range []gcReport{dry, rep} {
		if r.Deleted.Narinfos.Objects != 3 || r.Deleted.Nars.Objects != 3 || r.Deleted.Listings.Objects != 3 || r.Pinned != 1 || r.Roots != 1 {
			t.Errorf("report %+v: want 3 narinfos, NARs and listings deleted, 1 pin, 1 root", r)
		}
	}
	verifyClean(t, ctx, srv, n, store, key)
	after := verifyCache(t, ctx, bucket, key.public)
	var want []string
	for _, k := range before.keys {
		if !slices.Contains(goneKeys, k) {
			want = append(want, k)
		}
	}
	got := slices.DeleteFunc(slices.Clone(after.keys), func(k string) bool { return k == "nixs3q/gc/last.json" })
	if !slices.Equal(got, want) {
		t.Fatalf("after gc the bucket holds:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range keptPaths {
		if after.narinfos[p] == nil {
			t.Errorf("%s was collected", p)
		}
	}
	// Real Nix substitutes every kept closure, and not a collected one.
	roots := append(append(slices.Clone(g1), g2...), g4...)
	store2 := n.substitute(t, ctx, bucket.nixURL(), key.public, roots)
	n.compareStores(t, ctx, store2, roots, keptPaths)
	if _, errOut, err := n.try(ctx, nil, "nix", "copy", "--from", bucket.nixURL(), "--to", "local?root="+t.TempDir(),
		"--option", "trusted-public-keys", key.public.String(), g3[0]); err == nil {
		t.Errorf("a collected path still substitutes:\n%s", errOut)
	}

	// status shows the run (the daemon reads the report at start).
	d2.stop()
	d3 := startDaemon(t, newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := cli(t, ctx, d3.opts.socket, "status")
		if strings.Contains(st.stdout, "last gc:") && strings.Contains(st.stdout, "deleted 9 objects") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status does not show the last gc:\n%s", st.stdout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestGCBesideLiveBuilders runs gc again and again while three daemons
// publish closures that share a reference gc considers dead (olddep, old
// and no longer referenced by anything kept). Afterwards every narinfo's
// references and NAR are there and every published closure substitutes.
func TestGCBesideLiveBuilders(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-gc-live")
	key := n.generateKey(t, ctx, "e2e-gc-live-1")
	store := "s3://e2e-gc-live?endpoint=http://" + srv.host + "&region=us-east-1"
	var ds []*daemonProc
	for range 3 {
		ds = append(ds, startDaemon(t, newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n))))
	}
	nonce := newNonce(t)
	old := gcBuild(t, ctx, n, ds[0], nonce, "olddep")
	gcBuild(t, ctx, n, ds[0], nonce, "g3")
	// Everything so far is old; the live closures are built below, with
	// olddep already in the local store, so every daemon finds it in the
	// cache (or finds it gone and uploads it again).
	cutoff := afterCutoff()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var reports []gcReport
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, errOut, code := gcRun(ctx, srv, n, nil, "gc", "--store", store, "--json", "--keep-since", cutoff, "--settle", "3s")
			if code != 0 {
				t.Errorf("gc exited %d:\n%s", code, errOut)
				return
			}
			var r gcReport
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Errorf("gc report: %v", err)
				return
			}
			mu.Lock()
			reports = append(reports, r)
			mu.Unlock()
			time.Sleep(200 * time.Millisecond)
		}
	})
	// Build the live paths one at a time, each through another daemon,
	// while gc runs; at least six, and more (up to nine) until gc has run
	// three times meanwhile.
	var roots []string
	for i := range 9 {
		mu.Lock()
		runs := len(reports)
		mu.Unlock()
		if i >= 6 && runs >= 3 {
			break
		}
		roots = append(roots, gcBuild(t, ctx, n, ds[i%3], nonce, fmt.Sprintf("live.%d", i))...)
		time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	restored, deleted := 0, 0
	for _, r := range reports {
		restored += r.Restored
		deleted += int(r.Deleted.Narinfos.Objects)
	}
	t.Logf("%d gc runs while building: %d narinfos deleted, %d written back", len(reports), deleted, restored)
	if len(reports) == 0 {
		t.Errorf("no gc run finished while the daemons published")
	}
	for _, d := range ds {
		if st := status(t, ctx, d.opts.socket); st.Failed != 0 {
			t.Logf("daemon %s has failures (retried below): %+v", d.opts.socket, st.Failures)
			cli(t, ctx, d.opts.socket, "retry")
			waitDrained(t, ctx, d.opts.socket, time.Minute)
		}
	}
	verifyClean(t, ctx, srv, n, store, key)
	cc := verifyCache(t, ctx, bucket, key.public)
	if cc.narinfos[old[0]] == nil {
		t.Errorf("olddep, referenced by the live paths, is not in the cache")
	}
	closure := n.closure(t, ctx, roots)
	fresh := n.substitute(t, ctx, bucket.nixURL(), key.public, roots)
	n.compareStores(t, ctx, fresh, roots, closure)
}

// TestGCKilled kills gc with SIGKILL before a random deletion, for ten
// seeds, on a bucket restored to the same contents each time: the bucket
// is consistent after every kill, the killed run's lock makes the next gc
// refuse with a clear message, and once the lock is gone a run completes
// the collection.
func TestGCKilled(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-gc-kill")
	key := n.generateKey(t, ctx, "e2e-gc-kill-1")
	store := "s3://e2e-gc-kill?endpoint=http://" + srv.host + "&region=us-east-1&write-nar-listing=1"
	d := startDaemon(t, newDaemonOpts(t, store, key.secretFile, srv.daemonEnv(n)))
	nonce := newNonce(t)
	keep := gcBuild(t, ctx, n, d, nonce, "keep")
	gcBuild(t, ctx, n, d, nonce, "chain")
	gcBuild(t, ctx, n, d, nonce, "g4")
	d.stop()
	snapshot := bucketSnapshot(t, ctx, bucket)
	keptPaths := n.closure(t, ctx, keep)

	for seed := range 10 {
		restoreSnapshot(t, ctx, bucket, snapshot)
		cutoff := afterCutoff() // everything is old; only the pin keeps anything
		if _, errOut, code := gcRun(ctx, srv, n, nil, "pin", "--store", store, "--name", "keep", keep[0]); code != 0 {
			t.Fatalf("pin: %s", errOut)
		}
		killAfter := rand.New(rand.NewPCG(uint64(seed), 1)).IntN(40)
		_, errOut, code := gcRun(ctx, srv, n, []string{"NIXS3Q_GC_KILL_AFTER=" + fmt.Sprint(killAfter)},
			"gc", "--store", store, "--keep-since", cutoff, "--settle", "0")
		if code != -1 {
			t.Fatalf("seed %d: gc killed after %d deletions exited %d, want death by SIGKILL\n%s", seed, killAfter, code, errOut)
		}
		verifyClean(t, ctx, srv, n, store, key)
		cc := verifyCache(t, ctx, bucket, key.public)
		t.Logf("seed %d: killed before deletion %d; %d narinfos left", seed, killAfter+1, len(cc.narinfos))
		if t.Failed() {
			t.Fatalf("seed %d: inconsistent bucket after the kill", seed)
		}
		// The killed run's lock is still there: a second gc refuses.
		_, errOut, code = gcRun(ctx, srv, n, nil, "gc", "--store", store, "--keep-since", cutoff, "--settle", "0")
		if code != 3 || !strings.Contains(errOut, "another gc is running") {
			t.Fatalf("seed %d: gc beside a killed run's lock exited %d: %s", seed, code, errOut)
		}
		// As the message says: delete the lock once the run is known dead.
		if _, err := bucket.s3.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket.bucket), Key: aws.String("nixs3q/gc/lock")}); err != nil {
			t.Fatal(err)
		}
		if seed%3 == 0 {
			runGCJSON(t, ctx, srv, n, store, "--keep-since", cutoff, "--settle", "0")
			cc := verifyCache(t, ctx, bucket, key.public)
			var left []string
			for p := range cc.narinfos {
				left = append(left, p)
			}
			slices.Sort(left)
			if !slices.Equal(left, keptPaths) {
				t.Fatalf("seed %d: after a complete run the cache holds %v, want the pinned closure %v", seed, left, keptPaths)
			}
		}
	}
	fresh := n.substitute(t, ctx, bucket.nixURL(), key.public, keep)
	n.compareStores(t, ctx, fresh, keep, keptPaths)
}

// bucketSnapshot reads every object of the bucket.
func bucketSnapshot(t *testing.T, ctx context.Context, b bucketCache) map[string][]byte {
	t.Helper()
	snap := map[string][]byte{}
	for _, k := range b.list(t, ctx) {
		out, err := b.s3.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		snap[k] = buf.Bytes()
	}
	return snap
}

// restoreSnapshot makes the bucket hold exactly snap again.
func restoreSnapshot(t *testing.T, ctx context.Context, b bucketCache, snap map[string][]byte) {
	t.Helper()
	for _, k := range b.list(t, ctx) {
		if _, ok := snap[k]; !ok {
			if _, err := b.s3.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(k)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k, data := range snap {
		ct := "application/octet-stream"
		switch {
		case strings.HasSuffix(k, ".narinfo"):
			ct = "text/x-nix-narinfo"
		case strings.HasPrefix(k, "nar/"):
			ct = "application/x-nix-nar"
		case k == "nix-cache-info":
			ct = "text/x-nix-cache-info"
		}
		if _, err := b.s3.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(k),
			Body: bytes.NewReader(data), ContentType: aws.String(ct)}); err != nil {
			t.Fatal(err)
		}
	}
}
