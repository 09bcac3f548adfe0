//go:build e2e && !race

package e2e

// raceBuild says the suite runs under the race detector.
const raceBuild = false
