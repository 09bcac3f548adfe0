package verify

import (
	"sync/atomic"
	"time"
)

// phaseProgress reports one phase's progress periodically while it runs.
type phaseProgress struct {
	phase Phase
	total int
	done  atomic.Int64
	bytes atomic.Int64
	fn    func(Progress)
	quit  chan struct{}
	ended chan struct{}
}

// startProgress starts reporting phase, which has total items (0:
// unknown), every ProgressInterval; stop makes the last call. Without a
// Progress callback it does nothing but count.
func (c *checker) startProgress(phase Phase, total int) *phaseProgress {
	pp := &phaseProgress{phase: phase, total: total, fn: c.cfg.Progress}
	if pp.fn == nil || total == 0 {
		pp.fn = nil
		return pp
	}
	pp.quit, pp.ended = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(pp.ended)
		t := time.NewTicker(c.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				pp.fn(pp.snapshot(false))
			case <-pp.quit:
				pp.fn(pp.snapshot(true))
				return
			}
		}
	}()
	return pp
}

func (pp *phaseProgress) snapshot(last bool) Progress {
	return Progress{Phase: pp.phase, Done: int(pp.done.Load()), Total: pp.total, Bytes: pp.bytes.Load(), Last: last}
}

func (pp *phaseProgress) add(items int, bytes int64) {
	pp.done.Add(int64(items))
	pp.bytes.Add(bytes)
}

func (pp *phaseProgress) stop() {
	if pp.fn == nil {
		return
	}
	close(pp.quit)
	<-pp.ended
}
