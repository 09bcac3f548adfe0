// Package wanproxy is an HTTP reverse proxy that makes a server on loopback
// behave like one across a wide-area network: it adds latency to every
// request, caps the bandwidth shared by all connections, and answers a
// chosen fraction of requests with S3's throttling error (503 SlowDown with
// Retry-After). The benchmark puts it in front of MinIO so that nixs3q and
// `nix copy` are measured against the same simulated network.
//
// # Promises
//
//   - Every request that is forwarded waits Config.Latency in all: half
//     before it is sent to the upstream server, half before the response
//     headers go back. A throttled request waits the same latency and is
//     never forwarded, so the upstream server never sees it.
//   - Request and response bodies both draw from one token bucket of
//     Config.Bandwidth bits per second (a shared, half-duplex link: bytes
//     going either way count against the same budget). The burst is
//     Config.Burst bytes; after it, throughput over any second stays within
//     the rate.
//   - The Host header of the client's request is kept, so that signatures
//     over it (SigV4) still verify upstream.
//   - Throttling is drawn from a PRNG seeded with Config.Seed: the same
//     sequence of requests is throttled the same way on every run.
//
// It listens on loopback only and is meant for tests and benchmarks, not for
// production traffic.
package wanproxy
