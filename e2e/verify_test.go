//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// mutableCache is a cache the tests can break.
type mutableCache interface {
	cacheView
	put(t *testing.T, ctx context.Context, key string, data []byte)
	del(t *testing.T, ctx context.Context, key string)
	// abandonUpload starts a write of key and leaves it unfinished, as a
	// crashed uploader would.
	abandonUpload(t *testing.T, ctx context.Context, key string)
}

func (c dirCache) put(t *testing.T, ctx context.Context, key string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, filepath.FromSlash(key)), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (c dirCache) del(t *testing.T, ctx context.Context, key string) {
	t.Helper()
	if err := os.Remove(filepath.Join(c.dir, filepath.FromSlash(key))); err != nil {
		t.Fatal(err)
	}
}

func (c dirCache) abandonUpload(t *testing.T, ctx context.Context, key string) {
	t.Helper()
	// What os.CreateTemp leaves when the writer dies before the rename.
	dir, base := filepath.Split(filepath.Join(c.dir, filepath.FromSlash(key)))
	if err := os.WriteFile(filepath.Join(dir, ".tmp-"+base+"-123456789"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (c bucketCache) put(t *testing.T, ctx context.Context, key string, data []byte) {
	t.Helper()
	if _, err := c.s3.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
}

func (c bucketCache) del(t *testing.T, ctx context.Context, key string) {
	t.Helper()
	if _, err := c.s3.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
}

func (c bucketCache) abandonUpload(t *testing.T, ctx context.Context, key string) {
	t.Helper()
	up, err := c.s3.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.s3.UploadPart(ctx, &awss3.UploadPartInput{Bucket: aws.String(c.bucket), Key: aws.String(key),
		UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(bytes.Repeat([]byte("x"), 1<<20))})
	if err != nil {
		t.Fatal(err)
	}
}

// verifyRun is one `nixs3q verify ... --json` run.
type verifyRun struct {
	code   int
	stdout string
	stderr string
	err    error // the command could not be run
}

func runVerify(t *testing.T, ctx context.Context, env []string, args ...string) verifyRun {
	t.Helper()
	r := runVerifyErr(ctx, env, args...)
	if r.err != nil {
		t.Fatalf("nixs3q verify: %v", r.err)
	}
	return r
}

// runVerifyErr is runVerify for goroutines other than the test's: it
// returns a failure to run instead of failing the test.
func runVerifyErr(ctx context.Context, env []string, args ...string) verifyRun {
	cmd := exec.CommandContext(ctx, bin.nixs3q, append([]string{"verify"}, args...)...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := verifyRun{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		r.err = err
	}
	return r
}

// reportProblems parses a JSON report and returns its problems as
// "kind key" lines, sorted.
func reportProblems(t *testing.T, js string) []string {
	t.Helper()
	var r struct {
		Problems []struct{ Kind, Key string }
	}
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("verify --json output: %v\n%s", err, js)
	}
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.Kind+" "+p.Key)
	}
	slices.Sort(out)
	return out
}

func narinfoKeyOf(p string) string { return filepath.Base(p)[:32] + ".narinfo" }

// TestVerifyRepair publishes closures with the daemon, breaks the cache in
// every way the verify command knows, and requires verify to report
// exactly those problems, verify --repair to make the cache clean again,
// and real Nix to substitute every closure that is still published.
func TestVerifyRepair(t *testing.T) {
	t.Run("minio", func(t *testing.T) {
		ctx := testContext(t)
		n := newNixTool(t)
		srv := startS3(t)
		bucket := srv.bucket(t, "e2e-verify")
		store := "s3://e2e-verify?endpoint=http://" + srv.host + "&region=us-east-1"
		testVerifyRepair(t, ctx, n, bucket, store, srv.daemonEnv(n), nil)
	})
	t.Run("file", func(t *testing.T) {
		ctx := testContext(t)
		n := newNixTool(t)
		dir := filepath.Join(t.TempDir(), "cache")
		testVerifyRepair(t, ctx, n, dirCache{dir: dir}, "file://"+dir+"?write-nar-listing=1", n.env, []string{"--compression", "none"})
	})
}

func testVerifyRepair(t *testing.T, ctx context.Context, n *nixTool, c mutableCache, store string, env, daemonFlags []string) {
	key := n.generateKey(t, ctx, "e2e-verify-1")
	opts := newDaemonOpts(t, store, key.secretFile, env)
	opts.flags = daemonFlags
	d := startDaemon(t, opts)
	res := buildAndPublish(t, ctx, n, d, c, key, "all")
	// A second closure (b' -> c'), which the local store then loses.
	lost := buildAndPublish(t, ctx, n, d, c, key, "small")
	d.stop()

	path := func(suffix string, among []string) string {
		for _, p := range among {
			if strings.HasSuffix(p, suffix) {
				return p
			}
		}
		t.Fatalf("no path ending in %s among %v", suffix, among)
		return ""
	}
	a, b, cc := path("-e2e-a", res.closure), path("-e2e-b", res.closure), path("-e2e-c", res.closure)
	multi, dev := path("-e2e-multi", res.closure), path("-e2e-multi-dev", res.closure)
	lostB, lostC := path("-e2e-b", lost.closure), path("-e2e-c", lost.closure)
	ni := func(p string) *nix.NarInfo { return res.cache.narinfos[p] }
	args := []string{"--store", store, "--trusted-public-key", key.public.String(), "--json", "--grace", "1s"}

	if r := runVerify(t, ctx, env, args...); r.code != 0 || len(reportProblems(t, r.stdout)) != 0 {
		t.Fatalf("verify of the freshly published cache: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Break it.
	c.del(t, ctx, ni(cc).URL)             // a NAR is deleted
	c.del(t, ctx, narinfoKeyOf(b))        // a reference's narinfo is deleted
	nar, err := c.get(ctx, ni(multi).URL) // a NAR is truncated
	if err != nil {
		t.Fatal(err)
	}
	c.put(t, ctx, ni(multi).URL, nar[:len(nar)/2])
	c.put(t, ctx, narinfoKeyOf(dev), []byte("StorePath: corrupt\nURL: \n")) // a narinfo is corrupted
	other, err := nix.GenerateKey("e2e-other-1")                            // a narinfo is signed by another key
	if err != nil {
		t.Fatal(err)
	}
	resigned := *ni(a)
	resigned.Sigs = nil
	if err := resigned.Sign(storeDir, other); err != nil {
		t.Fatal(err)
	}
	text, err := resigned.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	c.put(t, ctx, narinfoKeyOf(a), text)
	c.abandonUpload(t, ctx, "nar/abandoned.nar.zst") // an upload is started and abandoned
	// A NAR is deleted whose path is not in the local store any more.
	c.del(t, ctx, lost.cache.narinfos[lostC].URL)
	n.deletePaths(t, []string{lostB, lostC})
	for _, p := range []string{lostB, lostC} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s is still in the local store", p)
		}
	}
	time.Sleep(1500 * time.Millisecond) // older than --grace

	want := []string{
		"nar-missing " + narinfoKeyOf(cc),
		"nar-missing " + narinfoKeyOf(lostC),
		"nar-size " + narinfoKeyOf(multi),
		"narinfo-invalid " + narinfoKeyOf(dev),
		"reference-missing " + narinfoKeyOf(a),
		"signature-untrusted " + narinfoKeyOf(a),
		"pending-upload nar/abandoned.nar.zst",
		// Taking away a narinfo leaves its NAR unused: b's, and that of
		// the corrupted narinfo.
		"orphan-nar " + ni(b).URL,
		"orphan-nar " + ni(dev).URL,
	}
	slices.Sort(want)
	r := runVerify(t, ctx, env, args...)
	if got := reportProblems(t, r.stdout); r.code != 1 || !slices.Equal(got, want) {
		t.Fatalf("verify of the broken cache: exit %d, problems:\n  %s\nwant:\n  %s\n%s",
			r.code, strings.Join(got, "\n  "), strings.Join(want, "\n  "), r.stderr)
	}
	human := runVerify(t, ctx, env, slices.DeleteFunc(slices.Clone(args), func(s string) bool { return s == "--json" })...)
	if human.code != 1 || !strings.Contains(human.stdout, "problems: 9 (") {
		t.Errorf("summary: exit %d\n%s", human.code, human.stdout)
	}
	t.Logf("verify summary of the broken cache:\n%s", human.stdout)

	repair := append(slices.Clone(args), "--repair", "--delete-orphans", "--secret-key-file", key.secretFile, "--check-nar-hashes")
	dry := runVerify(t, ctx, env, append(slices.Clone(repair), "--dry-run")...)
	if dry.code != 1 {
		t.Fatalf("--dry-run: exit %d\n%s%s", dry.code, dry.stdout, dry.stderr)
	}
	if r := runVerify(t, ctx, env, args...); !slices.Equal(reportProblems(t, r.stdout), want) {
		t.Fatalf("--dry-run changed the cache")
	}
	fixed := runVerify(t, ctx, env, repair...)
	var doc struct {
		Plan struct {
			Republish []string
			Remove    []struct{ Key string }
		}
		After json.RawMessage
	}
	if err := json.Unmarshal([]byte(fixed.stdout), &doc); err != nil {
		t.Fatalf("verify --repair --json: %v\n%s", err, fixed.stdout)
	}
	if fixed.code != 0 || len(reportProblems(t, string(doc.After))) != 0 {
		t.Fatalf("verify --repair: exit %d\n%s\n%s", fixed.code, fixed.stdout, fixed.stderr)
	}
	if got, wantRepub := doc.Plan.Republish, []string{a, b, cc, multi, dev}; !sameSet(got, wantRepub) {
		t.Errorf("republished %v, want %v", got, wantRepub)
	}
	if len(doc.Plan.Remove) != 2 || doc.Plan.Remove[0].Key != narinfoKeyOf(lostB) || doc.Plan.Remove[1].Key != narinfoKeyOf(lostC) {
		t.Errorf("removed %+v, want b' then c'", doc.Plan.Remove)
	}

	// Clean by every measure: verify with NAR hashes, the suite's own
	// reading of the cache, and real Nix substituting the closure.
	if r := runVerify(t, ctx, env, append(slices.Clone(args), "--check-nar-hashes")...); r.code != 0 {
		t.Fatalf("verify after the repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	after := verifyCache(t, ctx, c, key.public)
	requirePublished(t, after, res.local)
	for _, p := range []string{lostB, lostC} {
		if _, ok := after.narinfos[p]; ok {
			t.Errorf("%s is still published although its NAR is gone", p)
		}
	}
	substituteAndCompare(t, ctx, n, c, key, res)
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// TestVerifyWhilePublishing runs verify again and again on a healthy bucket
// while three daemons publish into it: not one run may report a problem.
func TestVerifyWhilePublishing(t *testing.T) {
	ctx := testContext(t)
	n := newNixTool(t)
	srv := startS3(t)
	bucket := srv.bucket(t, "e2e-verify-busy")
	store := "s3://e2e-verify-busy?endpoint=http://" + srv.host + "&region=us-east-1"
	key := n.generateKey(t, ctx, "e2e-busy-1")
	env := srv.daemonEnv(n)

	var daemons []*daemonProc
	var files [][]string
	for i := range 3 {
		daemons = append(daemons, startDaemon(t, newDaemonOpts(t, store, key.secretFile, env)))
		files = append(files, n.addFiles(t, ctx, fmt.Sprintf("%s-%d", newNonce(t), i), 60, 256<<10))
		t.Cleanup(func() { n.deletePaths(t, files[i]) })
	}
	// Verify runs in a loop while the main goroutine has the daemons
	// publish: daemon 0 closures with references, built with the hook,
	// and every daemon 60 added files.
	args := []string{"--store", store, "--trusted-public-key", key.public.String(), "--json"}
	done := make(chan struct{})
	var runs int
	var failures []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for busy := true; busy; runs++ {
			select {
			case <-done:
				busy = false
			default:
			}
			r := runVerifyErr(ctx, env, args...)
			if r.err != nil || r.code != 0 || !strings.Contains(r.stdout, `"problems": []`) {
				failures = append(failures, fmt.Sprintf("run %d: exit %d, %v\n%s%s", runs, r.code, r.err, r.stdout, r.stderr))
			}
		}
	})
	for i, d := range daemons {
		push(t, ctx, d.opts.socket, files[i]...)
	}
	roots := n.build(t, ctx, newNonce(t), "all", hookSetup{socket: daemons[0].opts.socket, stateDir: daemons[0].opts.stateDir})
	closure := n.closure(t, ctx, roots)
	t.Cleanup(func() { n.deletePaths(t, closure) })
	for _, d := range daemons {
		waitDrained(t, ctx, d.opts.socket, 2*time.Minute)
	}
	close(done)
	wg.Wait()
	for _, f := range failures {
		t.Errorf("verify while publishing, %s", f)
	}
	if runs < 3 {
		t.Errorf("only %d verify runs overlapped the publishing", runs)
	}
	st := 0
	for _, d := range daemons {
		st += int(status(t, ctx, d.opts.socket).Uploaded)
	}
	t.Logf("%d verify runs while 3 daemons published %d paths", runs, st)
	if st < 180 {
		t.Errorf("the daemons uploaded %d paths, want at least the 180 files", st)
	}
	verifyCache(t, ctx, bucket, key.public)
}
