package scantest

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"github.com/nixs3q/nixs3q/uploader"
)

// Faulty wraps a Cache and injects faults: hooks run before each call and
// an error they return is returned instead of calling the wrapped cache.
// It counts calls and the largest number of Gets in flight at once. It
// implements uploader.PendingLister by delegating when the wrapped cache
// does (and reporting nothing otherwise).
type Faulty struct {
	uploader.Cache

	// BeforeGet, BeforeHas and BeforeDelete may return an error to fail
	// the call. They run concurrently.
	BeforeGet    func(key string) error
	BeforeHas    func(key string) error
	BeforeDelete func(key string) error
	// FailListAfter, when > 0, fails List with ListErr after that many
	// objects were passed to its callback.
	FailListAfter int
	ListErr       error

	Gets, Hases, Deletes atomic.Int64

	mu          sync.Mutex
	inFlight    int
	MaxInFlight int // largest number of concurrent Gets seen; read after the calls
}

// Get implements uploader.Cache.
func (f *Faulty) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f.Gets.Add(1)
	f.mu.Lock()
	f.inFlight++
	f.MaxInFlight = max(f.MaxInFlight, f.inFlight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	if f.BeforeGet != nil {
		if err := f.BeforeGet(key); err != nil {
			return nil, err
		}
	}
	return f.Cache.Get(ctx, key)
}

// Has implements uploader.Cache.
func (f *Faulty) Has(ctx context.Context, key string) (bool, error) {
	f.Hases.Add(1)
	if f.BeforeHas != nil {
		if err := f.BeforeHas(key); err != nil {
			return false, err
		}
	}
	return f.Cache.Has(ctx, key)
}

// Delete implements uploader.Cache.
func (f *Faulty) Delete(ctx context.Context, key string) error {
	f.Deletes.Add(1)
	if f.BeforeDelete != nil {
		if err := f.BeforeDelete(key); err != nil {
			return err
		}
	}
	return f.Cache.Delete(ctx, key)
}

// List implements uploader.Cache.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(uploader.Object) error) error {
	n := 0
	return f.Cache.List(ctx, prefix, func(o uploader.Object) error {
		if f.FailListAfter > 0 && n >= f.FailListAfter {
			return f.ListErr
		}
		n++
		return fn(o)
	})
}

// ListPending implements uploader.PendingLister.
func (f *Faulty) ListPending(ctx context.Context, prefix string, fn func(uploader.PendingUpload) error) error {
	if pl, ok := f.Cache.(uploader.PendingLister); ok {
		return pl.ListPending(ctx, prefix, fn)
	}
	return nil
}

// AbortPending implements uploader.PendingLister.
func (f *Faulty) AbortPending(ctx context.Context, p uploader.PendingUpload) error {
	if pl, ok := f.Cache.(uploader.PendingLister); ok {
		return pl.AbortPending(ctx, p)
	}
	return nil
}
