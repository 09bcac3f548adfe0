package gc

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/nixs3q/nixs3q/uploader"
)

// counting counts the requests a run sends: one per Has, Put, Get and
// Delete, one per listing page of 1,000 keys.
type counting struct {
	uploader.Cache
	n atomic.Int64
}

var _ uploader.PendingLister = (*counting)(nil)

func (c *counting) Has(ctx context.Context, key string) (bool, error) {
	c.n.Add(1)
	return c.Cache.Has(ctx, key)
}

func (c *counting) Put(ctx context.Context, key string, body io.Reader, opt uploader.PutOptions) error {
	c.n.Add(1)
	return c.Cache.Put(ctx, key, body, opt)
}

func (c *counting) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.n.Add(1)
	return c.Cache.Get(ctx, key)
}

func (c *counting) Delete(ctx context.Context, key string) error {
	c.n.Add(1)
	return c.Cache.Delete(ctx, key)
}

func (c *counting) List(ctx context.Context, prefix string, fn func(uploader.Object) error) error {
	var seen int64
	c.n.Add(1)
	return c.Cache.List(ctx, prefix, func(o uploader.Object) error {
		if seen++; seen%1000 == 0 {
			c.n.Add(1)
		}
		return fn(o)
	})
}

// errNoPending is AbortPending's answer for a backend without unfinished
// writes; ListPending never reports one there.
var errNoPending = errors.New("gc: the cache keeps no unfinished uploads")

func (c *counting) ListPending(ctx context.Context, prefix string, fn func(uploader.PendingUpload) error) error {
	pl, ok := c.Cache.(uploader.PendingLister)
	if !ok {
		return nil
	}
	c.n.Add(1)
	return pl.ListPending(ctx, prefix, fn)
}

func (c *counting) AbortPending(ctx context.Context, p uploader.PendingUpload) error {
	pl, ok := c.Cache.(uploader.PendingLister)
	if !ok {
		return errNoPending
	}
	c.n.Add(1)
	return pl.AbortPending(ctx, p)
}
