package uploader

// Exported for the external tests in package uploader_test, which can import
// the cache backends that themselves import this package.
var AddToStoreForTest = addToStore
