{
  description = "nixs3q: publish what Nix builds to an S3 binary cache, durably queued";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      lib = nixpkgs.lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      version = "0.1.0-${self.shortRev or self.dirtyShortRev or "dirty"}";

      # go.mod asks for a recent Go, hence the latest rather than the default.
      mkPackage = pkgs: pkgs.buildGoLatestModule {
        pname = "nixs3q";
        inherit version;
        # Only what the Go build reads, so that editing docs or Nix files does
        # not rebuild the package.
        src = lib.fileset.toSource {
          root = ./.;
          fileset = lib.fileset.unions [
            ./go.mod
            ./go.sum
            (lib.fileset.fileFilter (file: file.hasExt "go") ./.)
          ];
        };
        # Checked by internal/nixfiles's test; refresh with scripts/vendor-hash.sh --update.
        vendorHash = "sha256-Lg2vENhwDOj4W9bdUIr7hK8NKRi8x35ighXAJ00yj38=";
        subPackages = [ "cmd/nixs3q" "cmd/nixs3q-hook" ];
        env.CGO_ENABLED = 0;
        ldflags = [ "-s" "-w" "-X main.version=${version}" ];
        # The test suite needs a real Nix store, a running nix-daemon and MinIO,
        # none of which exist in the build sandbox; `make check` runs it, and
        # checks.<system>.vm tests the built package on NixOS.
        doCheck = false;
        meta = {
          description = "Publish Nix build outputs to an S3 or local binary cache through a durable queue";
          mainProgram = "nixs3q";
          platforms = lib.platforms.linux;
        };
      };
    in
    {
      packages = forAllSystems (pkgs: rec {
        nixs3q = mkPackage pkgs;
        default = nixs3q;
      });

      overlays.default = final: _prev: { nixs3q = mkPackage final; };

      # The module itself (./nixos-module) works without this flake when
      # services.nixs3q.package is set; here it defaults to this flake's build.
      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nixos-module ];
        services.nixs3q.package =
          lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [ pkgs.go_latest pkgs.gopls pkgs.nix pkgs.minio pkgs.minio-client ];
        };
      });

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        vm = import ./nixos-module/test.nix {
          inherit pkgs;
          module = self.nixosModules.default;
        };
      });
    };
}
