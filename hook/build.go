package hook

import "strings"

// BuildSuffix marks a queue item that stands for a build rather than a
// store path: "<drv path>^*", Nix's notation for all outputs of a
// derivation. The daemon publishes for it what the cache should hold about
// the build besides the outputs' closures (its realisations and its log).
// The daemon queues one for the Drv of an enqueue request, the hook writes
// one into a spool file along with the outputs, and `nixs3q push` accepts
// them.
const BuildSuffix = "^*"

// BuildItem returns the queue item of the build of drv.
func BuildItem(drv string) string { return drv + BuildSuffix }

// BuildDrv returns the derivation of a build item, and false for an item
// that is a store path.
func BuildDrv(item string) (string, bool) {
	return strings.CutSuffix(item, BuildSuffix)
}
