// Package nixfiles holds no code, only the tests that keep the repository's
// Nix files honest where nixpkgs is not available:
//
//   - every .nix file in the repository parses (nix-instantiate --parse);
//   - nixos-module/default.nix, evaluated against a small stand-in for
//     nixpkgs' lib (testdata/stub-lib.nix), declares typed, described options
//     with valid defaults, and generates units whose paths are the defaults
//     compiled into nixs3q-hook and the CLI (hook.DefaultSocket,
//     hook.DefaultStateDir) and whose ExecStart the real nixs3q daemon
//     accepts flag by flag;
//   - flake.nix's vendorHash matches what `go mod vendor` makes of the
//     current go.mod, go.sum and imports (scripts/vendor-hash.sh --check), so
//     it cannot go stale unnoticed.
//
// The tests need Nix (testenv.RequireNix) and build cmd/nixs3q.
package nixfiles
