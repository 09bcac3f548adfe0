package uploader

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/nixs3q/nixs3q/nix"
)

// Presence caches which narinfos are known to exist in the cache, so that
// uploads of overlapping closures skip most lookups. *queue.Queue implements
// it. Implementations are safe for concurrent use.
type Presence interface {
	// PresentFresh reports which of keys were marked present less than ttl
	// ago. Keys not marked, or marked longer ago, are absent from the map or
	// false.
	PresentFresh(keys []string, ttl time.Duration) (map[string]bool, error)
	// MarkPresent records keys as present now.
	MarkPresent(keys []string) error
	// ForgetPresent removes keys.
	ForgetPresent(keys []string) error
}

// Observer follows Upload calls for a progress display. Its methods are
// called from any goroutine, possibly concurrently, and must return
// quickly without calling back into the Uploader. An Observer that also
// has a method Follows(root string) bool gets Planned only for the roots
// it follows, and the closures of the others are not even listed.
type Observer interface {
	// Planned is called once per root of an Upload or UploadBatch call,
	// once its closure has been looked up and before any of it is
	// uploaded: closure lists the root's closure members (the root alone
	// when a fresh presence-cache entry stands for its closure), missing
	// maps those to be uploaded to their NAR sizes; the others are
	// already in the cache or upstream.
	Planned(root string, closure []string, missing map[string]uint64)
	// Finished is called once per upload of a missing path when it ends,
	// before any Upload call waiting for it returns: err is nil once its
	// narinfo is published, else why it was not.
	Finished(path string, err error)
}

// Uploader publishes closures of store paths to a Cache, keeping the cache
// consistent for Nix clients at every moment: a narinfo is written only after
// its NAR and the narinfos of all its references. It is safe for concurrent
// use; concurrent Upload calls share work on common paths.
type Uploader struct {
	cfg          Config
	cache        Cache
	src          PathInfoSource
	presence     Presence // nil when the presence cache is disabled
	roots        Roots    // nil: roots found in the cache are not re-asserted
	key          *nix.SecretKey
	upstreamKeys []nix.PublicKey // parsed Config.SkipSignedBy
	log          *zap.Logger
	codec        *codec
	filter       *filter
	slots        *slots        // one per NAR being streamed
	small        *slots        // one per small NAR in flight (smallnar.go)
	lookups      chan struct{} // one token per lookup in flight, over all calls
	sending      chan struct{} // one token per compressed NAR still being sent
	noList       atomic.Bool   // listing was denied: look up path by path from now on
	// bucketKeys estimates the number of keys at the top of the cache,
	// from the last listing; estimated says it holds a measurement. See
	// listlookup.go.
	bucketKeys atomic.Int64
	estimated  atomic.Bool

	mu        sync.Mutex
	flights   map[string]*flight // store path -> upload in progress
	plans     map[*plan]struct{} // plans of the calls uploading now
	transfers map[*transfer]struct{}
	// published remembers when this process last published each path
	// (at most maxPublished, oldest forgotten first), so that a call whose
	// lookup ran just before a concurrent call published a path does not
	// upload it a second time.
	published     map[string]time.Time
	publishedFIFO []string
}

// maxPublished bounds Uploader.published.
const maxPublished = 50_000

// Result counts what one Upload call did.
type Result struct {
	// Uploaded is the number of paths this call published (NAR and
	// narinfo). Over all calls, each actual upload is counted once.
	Uploaded int
	// Skipped is the number of closure members already in the cache, or
	// published meanwhile by a concurrent Upload call that shared them.
	Skipped int
	// Bytes is the number of compressed NAR bytes sent by this call.
	Bytes int64
	// NarBytes is the number of uncompressed NAR bytes those were made of.
	NarBytes int64
	// Excluded is the number of closure members the filters left out
	// (Config.Filters), and HeldBack the number not published because they
	// refer to one of those. Over the roots of one call, each member is
	// counted once.
	Excluded, HeldBack int
	// HeldBy is set when the root itself is not published because of the
	// filters: the root when it is excluded, else an excluded path it
	// refers to. The root's closure is then not in the cache, and that is
	// not an error.
	HeldBy string
}

// Transfer describes one NAR being streamed.
type Transfer struct {
	Path    string
	NarSize uint64
	Read    int64 // NAR bytes streamed so far
	Started time.Time
}

type transfer struct {
	path    string
	narSize uint64
	started time.Time
	read    atomic.Int64
}

// New returns an Uploader. cfg is validated and defaulted. presence may be
// nil, as may key (narinfos then carry only the signatures the store already
// has). log may be nil; it is used as given, the caller names it (main
// passes log.Named("uploader")).
func New(cfg Config, cache Cache, src PathInfoSource, presence Presence, key *nix.SecretKey, log *zap.Logger) (*Uploader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cache == nil || src == nil {
		return nil, errors.New("uploader: New needs a cache and a path info source")
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.PresenceTTL == 0 {
		presence = nil
	}
	c, err := newCodec(cfg.Compression, cfg.CompressionLevel, cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	upstream, err := cfg.upstreamKeys()
	if err != nil {
		return nil, err
	}
	f, err := newFilter(cfg.Filters)
	if err != nil {
		return nil, err
	}
	return &Uploader{
		upstreamKeys: upstream,
		filter:       f,
		cfg:          cfg,
		cache:        cache,
		src:          src,
		presence:     presence,
		key:          key,
		log:          log,
		codec:        c,
		slots:        newSlots(cfg.Concurrency),
		flights:      make(map[string]*flight),
		plans:        make(map[*plan]struct{}),
		published:    make(map[string]time.Time),
		transfers:    make(map[*transfer]struct{}),
		small:        newSlots(smallSlots),
		lookups:      make(chan struct{}, cfg.LookupConcurrency),
		sending:      make(chan struct{}, cfg.Concurrency),
	}, nil
}

// Active returns the NARs being streamed right now, oldest first. It never
// blocks on I/O.
func (u *Uploader) Active() []Transfer {
	u.mu.Lock()
	out := make([]Transfer, 0, len(u.transfers))
	for t := range u.transfers {
		out = append(out, Transfer{Path: t.path, NarSize: t.narSize, Read: t.read.Load(), Started: t.started})
	}
	u.mu.Unlock()
	slices.SortFunc(out, func(a, b Transfer) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out
}

func (u *Uploader) startTransfer(info *PathInfo) *transfer {
	t := &transfer{path: info.Path, narSize: info.NarSize, started: time.Now()}
	u.mu.Lock()
	u.transfers[t] = struct{}{}
	u.mu.Unlock()
	return t
}

func (u *Uploader) endTransfer(t *transfer) {
	u.mu.Lock()
	delete(u.transfers, t)
	u.mu.Unlock()
}

// narinfoKey is the cache key of a store path's narinfo.
func narinfoKey(sp nix.StorePath) string { return sp.HashPart + ".narinfo" }
