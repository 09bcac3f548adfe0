package uploader

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"
)

// fakeCache is an in-memory Cache that records committed Puts in order and
// can fail or block chosen keys. It keeps the Cache contract (CheckKey,
// atomic Puts that commit nothing on any failure, fs.ErrNotExist): the
// cachetest suite checks it like every backend (fakecache_test.go).
type fakeCache struct {
	mu       sync.Mutex
	objects  map[string][]byte
	types    map[string]string
	modified map[string]time.Time
	puts     []string // committed keys, in commit order
	attempts map[string]int
	heads    map[string]int
	failPut  map[string]error // Put of key reads the body, then fails
	failHas  map[string]error
	// beforePut, when set, runs at the start of every Put, outside the lock.
	beforePut func(key string)
	// afterRead, when set, runs once a Put has read its whole body, before
	// it commits, outside the lock: the request still on the wire.
	afterRead func(key string)
	// afterHas, when set, runs after every Has has taken its answer, outside
	// the lock, before returning it: a lookup whose answer goes stale.
	afterHas func(key string)
}

var _ Cache = (*fakeCache)(nil)

func newFakeCache() *fakeCache {
	return &fakeCache{
		objects:  make(map[string][]byte),
		types:    make(map[string]string),
		modified: make(map[string]time.Time),
		attempts: make(map[string]int),
		heads:    make(map[string]int),
		failPut:  make(map[string]error),
		failHas:  make(map[string]error),
	}
}

func (c *fakeCache) Has(ctx context.Context, key string) (bool, error) {
	if err := CheckKey(key); err != nil {
		return false, fmt.Errorf("fake: has: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	c.mu.Lock()
	c.heads[key]++
	if err := c.failHas[key]; err != nil {
		c.mu.Unlock()
		return false, err
	}
	_, ok := c.objects[key]
	hook := c.afterHas
	c.mu.Unlock()
	if hook != nil {
		hook(key)
	}
	return ok, nil
}

func (c *fakeCache) Put(ctx context.Context, key string, body io.Reader, opt PutOptions) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("fake: put: %w", err)
	}
	c.mu.Lock()
	c.attempts[key]++
	hook, after := c.beforePut, c.afterRead
	c.mu.Unlock()
	if hook != nil {
		hook(key)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("fake: put %s: read body: %w", key, err)
	}
	if after != nil {
		after(key)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fake: put %s: %w", key, err)
	}
	if opt.Size >= 0 && int64(len(data)) != opt.Size {
		return fmt.Errorf("fake: put %s: body has %d bytes, Size says %d", key, len(data), opt.Size)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.failPut[key]; err != nil {
		return fmt.Errorf("fake: put %s: %w", key, err)
	}
	c.objects[key] = data
	c.types[key] = opt.ContentType
	c.modified[key] = time.Now()
	c.puts = append(c.puts, key)
	return nil
}

func (c *fakeCache) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("fake: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fake: get %s: %w", key, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	data, ok := c.objects[key]
	if !ok {
		return nil, fmt.Errorf("fake: get %s: %w", key, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (c *fakeCache) List(ctx context.Context, prefix string, fn func(Object) error) error {
	if err := CheckPrefix(prefix); err != nil {
		return err
	}
	c.mu.Lock()
	var objs []Object
	for key, data := range c.objects {
		if strings.HasPrefix(key, prefix) {
			objs = append(objs, Object{Key: key, Size: int64(len(data)), LastModified: c.modified[key]})
		}
	}
	c.mu.Unlock()
	slices.SortFunc(objs, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	for _, o := range objs {
		if err := fn(o); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (c *fakeCache) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.objects, key)
	delete(c.types, key)
	delete(c.modified, key)
	return ctx.Err()
}

func (c *fakeCache) String() string { return "fake://" }

// set stores an object without recording a Put.
func (c *fakeCache) set(key string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objects[key] = data
	c.modified[key] = time.Now()
}

func (c *fakeCache) object(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, ok := c.objects[key]
	return data, ok
}

func (c *fakeCache) putLog() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.puts)
}

func (c *fakeCache) attemptsOf(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attempts[key]
}

func (c *fakeCache) headsOf(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.heads[key]
}

func (c *fakeCache) totalHeads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.heads {
		n += v
	}
	return n
}

// fakePresence is an in-memory Presence with a controllable clock.
type fakePresence struct {
	mu      sync.Mutex
	marked  map[string]time.Time
	now     time.Time
	forgot  []string
	queries int
}

var _ Presence = (*fakePresence)(nil)

func newFakePresence() *fakePresence {
	return &fakePresence{marked: make(map[string]time.Time), now: time.Unix(1_000_000, 0)}
}

func (p *fakePresence) PresentFresh(keys []string, ttl time.Duration) (map[string]bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queries++
	out := make(map[string]bool)
	for _, k := range keys {
		if at, ok := p.marked[k]; ok && p.now.Sub(at) < ttl {
			out[k] = true
		}
	}
	return out, nil
}

func (p *fakePresence) MarkPresent(keys []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		p.marked[k] = p.now
	}
	return nil
}

func (p *fakePresence) ForgetPresent(keys []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		delete(p.marked, k)
	}
	p.forgot = append(p.forgot, keys...)
	return nil
}

func (p *fakePresence) isMarked(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.marked[key]
	return ok
}

func (p *fakePresence) advance(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.now = p.now.Add(d)
}

func (c *fakeCache) typeOf(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.types[key]
}
