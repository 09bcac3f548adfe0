//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// suiteTimeout bounds each scenario, well above its normal run time.
const suiteTimeout = 4 * time.Minute

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	t.Cleanup(cancel)
	return ctx
}

// flowResult is what buildAndPublish built and found in the cache.
type flowResult struct {
	roots   []string
	closure []string
	local   map[string]localInfo
	cache   cacheContents
}

// buildAndPublish is the flow every cache goes through: build attr with
// the hook against the running daemon d, wait for the queue to drain, then
// check that every path of the closure is in the cache with the store's
// metadata and that the whole cache is consistent and signed.
func buildAndPublish(t *testing.T, ctx context.Context, n *nixTool, d *daemonProc, c cacheView, key keyPair, attr string) flowResult {
	t.Helper()
	var res flowResult
	res.roots = n.build(t, ctx, newNonce(t), attr, hookSetup{socket: d.opts.socket, stateDir: d.opts.stateDir})
	if files := spoolFiles(t, d.opts.stateDir); len(files) > 0 {
		t.Fatalf("the daemon was up, yet the hook spooled %d file(s)", len(files))
	}
	waitDrained(t, ctx, d.opts.socket, 2*time.Minute)
	res.closure = n.closure(t, ctx, res.roots)
	t.Cleanup(func() { n.deletePaths(t, res.closure) })
	res.local = n.pathInfo(t, ctx, res.closure)
	res.cache = verifyCache(t, ctx, c, key.public)
	requirePublished(t, res.cache, res.local)
	st := status(t, ctx, d.opts.socket)
	if st.Failed != 0 || st.Pending != 0 || st.InFlight != 0 {
		t.Fatalf("status after wait: %+v", st)
	}
	t.Logf("built %d root(s), closure of %d paths; daemon uploaded %d paths (%d bytes), skipped %d",
		len(res.roots), len(res.closure), st.Uploaded, st.UploadedBytes, st.Skipped)
	return res
}

// substituteAndCompare has Nix substitute the closure from the cache into a
// fresh store trusting key, compares every path with the original, and
// requires Nix to refuse the cache under a key it was not signed with.
func substituteAndCompare(t *testing.T, ctx context.Context, n *nixTool, c cacheView, key keyPair, res flowResult) {
	t.Helper()
	store := n.substitute(t, ctx, c.nixURL(), key.public, res.roots)
	n.compareStores(t, ctx, store, res.roots, res.closure)
	n.refuseWrongKey(t, ctx, c.nixURL(), res.roots)
}

// narinfoCount counts the narinfos among keys.
func narinfoCount(keys []string) int {
	n := 0
	for _, k := range keys {
		if strings.HasSuffix(k, ".narinfo") {
			n++
		}
	}
	return n
}
