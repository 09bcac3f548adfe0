# NixOS VM test: a build on `builder` is queued by the post-build-hook,
# uploaded by nixs3q to a MinIO bucket on `s3`, and substituted from that
# bucket by `client`, which has never seen the derivation.
#   nix build .#checks.x86_64-linux.vm
{ pkgs, module }:

let
  accessKey = "nixs3qtest";
  secretKey = "nixs3qtest-secret";

  minioCredentials = pkgs.writeText "minio-credentials" ''
    MINIO_ROOT_USER=${accessKey}
    MINIO_ROOT_PASSWORD=${secretKey}
  '';

  # What a real deployment keeps outside the store, e.g. in /run/keys.
  awsEnvironment = pkgs.writeText "nixs3q-aws-environment" ''
    AWS_ACCESS_KEY_ID=${accessKey}
    AWS_SECRET_ACCESS_KEY=${secretKey}
  '';

  # Built inside the VM, so its output exists only where it was built. It
  # needs nothing but the sandbox's /bin/sh.
  testDrv = pkgs.writeText "nixs3q-test-drv.nix" ''
    derivation {
      name = "nixs3q-vm-test";
      system = builtins.currentSystem;
      builder = "/bin/sh";
      args = [ "-c" "echo published by nixs3q > $out" ];
    }
  '';

  keyDir = "/var/keys";
in
pkgs.testers.runNixOSTest {
  name = "nixs3q";

  nodes = {
    s3 = { pkgs, ... }: {
      services.minio = {
        enable = true;
        rootCredentialsFile = minioCredentials;
      };
      networking.firewall.allowedTCPPorts = [ 9000 ];

      systemd.services.minio-bucket = {
        description = "Create the binary cache bucket";
        wantedBy = [ "multi-user.target" ];
        requires = [ "minio.service" ];
        after = [ "minio.service" ];
        path = [ pkgs.minio-client ];
        environment.HOME = "/run/minio-bucket";
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          RuntimeDirectory = "minio-bucket";
        };
        script = ''
          # MinIO accepts requests a moment after its unit has started.
          for _ in $(seq 60); do
            if mc alias set local http://127.0.0.1:9000 ${accessKey} ${secretKey} &&
              mc mb --ignore-existing local/cache; then
              break
            fi
            sleep 1
          done
          # Clients substitute anonymously over plain HTTP; only nixs3q writes.
          mc anonymous set download local/cache
        '';
      };
    };

    builder = { ... }: {
      imports = [ module ];
      services.nixs3q = {
        enable = true;
        storeUrl = "s3://cache?endpoint=http://s3:9000&region=us-east-1";
        secretKeyFile = "${keyDir}/cache.sec";
        environmentFile = "${awsEnvironment}";
      };
      # The test script makes the key; until then there is nothing to start.
      systemd.services.nixs3q.unitConfig.ConditionPathExists = "${keyDir}/cache.sec";
      environment.etc."nixs3q-test/drv.nix".source = testDrv;
    };

    client = { lib, ... }: {
      nix.settings.substituters = lib.mkForce [ "http://s3:9000/cache" ];
      # A real client lists the cache's public key in
      # nix.settings.trusted-public-keys; here the key is only made when the
      # test runs, so the test script writes it to this file.
      nix.extraOptions = "!include /etc/nix/nixs3q-test-key.conf";
    };
  };

  testScript = ''
    start_all()

    s3.wait_for_unit("minio-bucket.service")
    builder.wait_for_unit("nixs3q.socket")

    builder.succeed(
        "mkdir -p -m 0700 ${keyDir}",
        "nix-store --generate-binary-cache-key nixs3q-test-1 ${keyDir}/cache.sec ${keyDir}/cache.pub",
    )
    builder.systemctl("start nixs3q.service")
    builder.wait_for_unit("nixs3q.service")

    out = builder.succeed("nix-build --no-out-link /etc/nixs3q-test/drv.nix").strip()
    # The post-build-hook queued the output during the build.
    builder.succeed("nixs3q wait --timeout 120s")
    builder.succeed("nixs3q status >&2")

    pub = builder.succeed("cat ${keyDir}/cache.pub").strip()
    client.succeed(f"echo 'trusted-public-keys = {pub}' > /etc/nix/nixs3q-test-key.conf")
    client.succeed("systemctl restart nix-daemon.service")
    client.fail(f"test -e {out}")
    client.succeed(f"nix-store --realise {out}")
    client.succeed(f"grep -qx 'published by nixs3q' {out}")
    client.succeed(f"nix-store --verify-path {out}")
  '';
}
