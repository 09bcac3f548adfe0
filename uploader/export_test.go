package uploader

// Exported for the external tests in package uploader_test, which can import
// the cache backends that themselves import this package.
var AddToStoreForTest = addToStore

// NewFakeCacheForTest returns the in-memory cache of the pipeline tests, for
// the conformance suite to check.
func NewFakeCacheForTest() Cache { return newFakeCache() }
