//go:build e2e && race

package e2e

// raceBuild says the suite runs under the race detector; the binaries under
// test are then built with it too, so that races in the daemon fail the run.
const raceBuild = true
