package queue

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkEnqueue measures concurrent Enqueue calls of two new paths each,
// as the post-build hook makes them; every call is fsynced. commits/op shows
// how much group commit shares the fsyncs.
func BenchmarkEnqueue(b *testing.B) {
	q := openTest(b, Config{})
	var n atomic.Uint64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.Add(1)
			paths := []string{fmt.Sprintf("/nix/store/%016d-out", i), fmt.Sprintf("/nix/store/%016d-doc", i)}
			if _, err := q.Enqueue(ctx, paths); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(q.Commits())/float64(b.N), "commits/op")
}

// BenchmarkEnqueueSerial measures the latency of one uncontended Enqueue,
// which is one commit and its fsync.
func BenchmarkEnqueueSerial(b *testing.B) {
	q := openTest(b, Config{})
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if _, err := q.Enqueue(ctx, []string{fmt.Sprintf("/nix/store/%016d-out", i)}); err != nil {
			b.Fatal(err)
		}
	}
}
