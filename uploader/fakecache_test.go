package uploader_test

import (
	"testing"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/cachetest"
)

// The pipeline tests run against an in-memory cache that can inject faults;
// it keeps the same contract as the real backends, so what those tests show
// holds for them.
func TestFakeCacheConformance(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) uploader.Cache { return uploader.NewFakeCacheForTest() })
}
