// Package cachetest is the conformance suite every uploader.Cache backend
// passes: the promises of the interface (missing keys, round trips,
// overwrites, atomicity under failing bodies, wrong sizes and cancellation,
// streaming bodies larger than one multipart part, concurrency, key
// validation), checked against the backend itself rather than a model of it.
//
// A backend's tests call Run with a constructor that returns a fresh, empty
// cache per subtest, configured with a multipart part size of at most
// PartSize.
package cachetest
