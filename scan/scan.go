package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
	"github.com/nixs3q/nixs3q/uploader"
)

// Scan lists every object of cache, reads and parses every narinfo with at
// most cfg.Concurrency reads in flight, lists unfinished uploads (when cache
// is an uploader.PendingLister) and returns the graph. cfg is validated and
// defaulted. It blocks until the scan is done or fails; see the package
// documentation for what it holds in memory and when it fails. log may be
// nil.
func Scan(ctx context.Context, cache uploader.Cache, cfg Config, log *zap.Logger) (*Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	b := &builder{
		cfg:   cfg,
		cache: cache,
		log:   log.Named("scan"),
		g: &Graph{
			storeDir: cfg.StoreDir,
			started:  time.Now(),
			byHash:   make(map[string]ID),
			nars:     make(map[string]objMeta),
		},
		interned: make(map[string]string),
	}
	stopProgress := b.startProgress()
	err := b.run(ctx)
	b.g.finished = time.Now()
	stopProgress()
	if err != nil {
		return nil, err
	}
	b.finish()
	return b.g, nil
}

type builder struct {
	cfg   Config
	cache uploader.Cache
	log   *zap.Logger

	listed, narinfos, fetched atomic.Int64

	mu       sync.Mutex // guards g and interned while the scan runs
	g        *Graph
	interned map[string]string
}

func (b *builder) run(ctx context.Context) error {
	ci, err := readCacheInfo(ctx, b.cache)
	if err != nil {
		return err
	}
	b.g.cacheInfo = ci

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan uploader.Object, b.cfg.Concurrency)
	var wg sync.WaitGroup
	for range b.cfg.Concurrency {
		wg.Go(func() {
			for o := range jobs {
				if ctx.Err() != nil {
					continue // drain after a failure
				}
				if err := b.fetch(ctx, o); err != nil {
					cancel(err)
				}
			}
		})
	}
	listErr := b.cache.List(ctx, "", func(o uploader.Object) error {
		b.listed.Add(1)
		class := Classify(o.Key)
		if class != ClassNarInfo {
			b.addObject(o, class)
			return nil
		}
		b.narinfos.Add(1)
		select {
		case jobs <- o:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(jobs)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		// A failed read stops the listing; report the read, not the
		// listing's echo of it.
		return cause
	}
	if listErr != nil {
		return fmt.Errorf("scan: list %s: %w", b.cache, listErr)
	}
	if pl, ok := b.cache.(uploader.PendingLister); ok {
		err := pl.ListPending(ctx, "", func(p uploader.PendingUpload) error {
			b.g.pending = append(b.g.pending, p)
			return nil
		})
		if err != nil {
			return fmt.Errorf("scan: list unfinished uploads of %s: %w", b.cache, err)
		}
	}
	return nil
}

// addObject records an object that is not a narinfo.
func (b *builder) addObject(o uploader.Object, class Class) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := &b.g.stats
	st.Objects++
	st.Bytes += o.Size
	st.ByClass[class].Objects++
	st.ByClass[class].Bytes += o.Size
	if class == ClassNar {
		b.g.nars[o.Key] = objMeta{size: o.Size, modified: o.LastModified.UnixNano()}
		return
	}
	b.g.others = append(b.g.others, Object{Object: o, Class: class})
}

// fetch reads, parses and records one narinfo. A narinfo deleted since it
// was listed is counted and left out.
func (b *builder) fetch(ctx context.Context, o uploader.Object) error {
	data, err := b.read(ctx, o.Key)
	if errors.Is(err, fs.ErrNotExist) {
		b.mu.Lock()
		b.g.stats.Vanished++
		b.mu.Unlock()
		b.fetched.Add(1)
		return nil
	}
	if err != nil && !errors.Is(err, errTooLarge) {
		return err
	}
	hash := strings.TrimSuffix(o.Key, ".narinfo")
	var ni *nix.NarInfo
	var sp nix.StorePath
	var fingerprint string
	bad := ""
	switch {
	case err != nil:
		bad = err.Error()
	default:
		ni, sp, fingerprint, bad = b.parse(hash, data)
	}
	sig := SigUnchecked
	if bad == "" && len(b.cfg.TrustedKeys) > 0 {
		sig = CheckSignatures(b.cfg.TrustedKeys, fingerprint, ni.Sigs)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	st := &b.g.stats
	st.Objects++
	st.Bytes += o.Size
	st.ByClass[ClassNarInfo].Objects++
	st.ByClass[ClassNarInfo].Bytes += o.Size
	id := b.intern(hash, "")
	n := &b.g.nodes[id]
	n.Size, n.Modified = o.Size, o.LastModified
	if bad != "" {
		n.State, n.Err = Invalid, bad
		b.fetched.Add(1)
		return nil
	}
	n.State = Valid
	n.Name = strings.Clone(sp.Name)
	n.URL = strings.Clone(ni.URL)
	n.Compression = b.str(ni.Compression)
	if n.Compression == "" {
		n.Compression = "bzip2" // as clients read a missing Compression
	}
	n.FileHash = cloneHash(ni.FileHash)
	n.FileSize = ni.FileSize
	n.NarHash = cloneHash(ni.NarHash)
	n.NarSize = ni.NarSize
	n.CA = ni.CA != ""
	n.Sig = sig
	names := make([]string, 0, len(ni.Sigs))
	for _, s := range ni.Sigs {
		name, _, _ := strings.Cut(s, ":")
		names = append(names, name)
	}
	n.Signers = b.str(strings.Join(names, ","))
	refs := make([]ID, 0, len(ni.References))
	for _, r := range ni.References {
		rh, rn := r[:32], r[33:]
		if rh == hash {
			b.g.nodes[id].SelfRef = true
			continue
		}
		refs = append(refs, b.intern(rh, rn))
	}
	slices.Sort(refs)
	// intern may have grown the slice: take the node again.
	b.g.nodes[id].Refs = slices.Compact(slices.Clip(refs))
	b.fetched.Add(1)
	return nil
}

var errTooLarge = errors.New("scan: narinfo too large")

// read returns the body of key, at most MaxNarInfoSize bytes.
func (b *builder) read(ctx context.Context, key string) ([]byte, error) {
	rc, err := b.cache.Get(ctx, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("scan: read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, b.cfg.MaxNarInfoSize+1))
	if err != nil {
		return nil, fmt.Errorf("scan: read %s: %w", key, err)
	}
	if int64(len(data)) > b.cfg.MaxNarInfoSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", errTooLarge, b.cfg.MaxNarInfoSize)
	}
	return data, nil
}

// parse parses a narinfo whose key names hash, and returns why it is
// unusable ("" when it is fine).
func (b *builder) parse(hash string, data []byte) (*nix.NarInfo, nix.StorePath, string, string) {
	ni, sp, fp, err := ParseNarInfo(b.cfg.StoreDir, hash, data)
	if err != nil {
		return nil, nix.StorePath{}, "", err.Error()
	}
	return ni, sp, fp, ""
}

// ParseNarInfo parses the narinfo stored under the hash part hash and
// checks it the way a scan does: it must parse, name a valid store path in
// storeDir with that hash part, and have a computable fingerprint, which
// it returns for CheckSignatures. Its error says why a narinfo is Invalid.
func ParseNarInfo(storeDir, hash string, data []byte) (*nix.NarInfo, nix.StorePath, string, error) {
	ni, err := nix.ParseNarInfo(data)
	if err != nil {
		return nil, nix.StorePath{}, "", err
	}
	sp, err := nix.ParseStorePath(storeDir, ni.StorePath)
	if err != nil {
		return nil, nix.StorePath{}, "", err
	}
	if sp.HashPart != hash {
		return nil, nix.StorePath{}, "", fmt.Errorf("describes %s, not a path with hash part %s", ni.StorePath, hash)
	}
	fp, err := ni.Fingerprint(storeDir)
	if err != nil {
		return nil, nix.StorePath{}, "", err
	}
	return ni, sp, fp, nil
}

// CheckSignatures checks sigs of a narinfo with the given fingerprint
// against keys: SigNone without signatures, SigTrusted when one verifies
// under one of keys, SigUntrusted otherwise. It never returns SigUnchecked.
func CheckSignatures(keys []nix.PublicKey, fingerprint string, sigs []string) SigStatus {
	if len(sigs) == 0 {
		return SigNone
	}
	for _, s := range sigs {
		for _, k := range keys {
			if k.Verify(fingerprint, s) {
				return SigTrusted
			}
		}
	}
	return SigUntrusted
}

// cloneHash copies h so that it does not keep the narinfo's text alive.
func cloneHash(h nix.Hash) nix.Hash {
	if h.IsZero() {
		return h
	}
	var algo string
	switch h.Algo { // constants, not substrings of the text
	case "sha256":
		algo = "sha256"
	case "sha512":
		algo = "sha512"
	case "sha1":
		algo = "sha1"
	case "md5":
		algo = "md5"
	default:
		algo = strings.Clone(h.Algo)
	}
	return nix.Hash{Algo: algo, Digest: slices.Clone(h.Digest)}
}

// str interns a short, often repeated string; b.mu must be held.
func (b *builder) str(s string) string {
	if v, ok := b.interned[s]; ok {
		return v
	}
	v := strings.Clone(s)
	b.interned[v] = v
	return v
}

// intern returns the node of hash, creating a Missing one; b.mu must be
// held. name, when given and the node has none, is recorded.
func (b *builder) intern(hash, name string) ID {
	if id, ok := b.g.byHash[hash]; ok {
		if name != "" && b.g.nodes[id].Name == "" && b.g.nodes[id].State == Missing {
			b.g.nodes[id].Name = strings.Clone(name)
		}
		return id
	}
	h := strings.Clone(hash)
	id := ID(len(b.g.nodes))
	b.g.nodes = append(b.g.nodes, Node{HashPart: h, Name: strings.Clone(name)})
	b.g.byHash[h] = id
	return id
}

// finish builds the reverse edges, marks listings and counts states.
func (b *builder) finish() {
	g := b.g
	g.nodes = slices.Clip(g.nodes)
	g.revOff = make([]int32, len(g.nodes)+1)
	for i := range g.nodes {
		for _, r := range g.nodes[i].Refs {
			g.revOff[r+1]++
		}
	}
	for i := 1; i < len(g.revOff); i++ {
		g.revOff[i] += g.revOff[i-1]
	}
	g.rev = make([]ID, g.revOff[len(g.nodes)])
	fill := slices.Clone(g.revOff[:len(g.nodes)])
	for i := range g.nodes { // in ID order, so each node's referrers are sorted
		for _, r := range g.nodes[i].Refs {
			g.rev[fill[r]] = ID(i)
			fill[r]++
		}
	}
	g.otherIdx = make(map[string]int32, len(g.others))
	for i, o := range g.others {
		g.otherIdx[o.Key] = int32(i)
		if o.Class != ClassListing {
			continue
		}
		if id, ok := g.byHash[HashPart(o.Key)]; ok {
			g.nodes[id].Listing = true
		}
	}
	for i := range g.nodes {
		switch g.nodes[i].State {
		case Valid:
			g.stats.Valid++
		case Invalid:
			g.stats.Invalid++
		case Missing:
			g.stats.Missing++
		}
	}
	g.stats.Pending = len(g.pending)
	b.interned = nil
}

// startProgress calls Config.Progress periodically until the returned
// function is called, which makes the final call and returns after it.
func (b *builder) startProgress() func() {
	if b.cfg.Progress == nil {
		return func() {}
	}
	started := b.g.started
	snapshot := func(done bool) Progress {
		return Progress{
			Listed:   b.listed.Load(),
			NarInfos: b.narinfos.Load(),
			Fetched:  b.fetched.Load(),
			Elapsed:  time.Since(started),
			Done:     done,
		}
	}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(b.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.cfg.Progress(snapshot(false))
			case <-stop:
				b.cfg.Progress(snapshot(true))
				return
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
	}
}

// maxCacheInfoSize bounds the nix-cache-info read.
const maxCacheInfoSize = 64 << 10

// readCacheInfo reads nix-cache-info; a missing one is CacheInfo{}.
func readCacheInfo(ctx context.Context, cache uploader.Cache) (CacheInfo, error) {
	rc, err := cache.Get(ctx, "nix-cache-info")
	if errors.Is(err, fs.ErrNotExist) {
		return CacheInfo{}, nil
	}
	if err != nil {
		return CacheInfo{}, fmt.Errorf("scan: read nix-cache-info: %w", err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxCacheInfoSize))
	if err != nil {
		return CacheInfo{}, fmt.Errorf("scan: read nix-cache-info: %w", err)
	}
	return ParseCacheInfo(data), nil
}

// ParseCacheInfo reads the fields of a nix-cache-info file. Unknown lines
// are ignored, as clients ignore them.
func ParseCacheInfo(data []byte) CacheInfo {
	ci := CacheInfo{Present: true}
	for line := range strings.SplitSeq(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "StoreDir":
			ci.StoreDir = v
		case "WantMassQuery":
			ci.WantMassQuery = v
		case "Priority":
			ci.Priority = v
		}
	}
	return ci
}
