# NixOS module for nixs3q: the upload daemon as a socket-activated, hardened
# systemd service, and nix-daemon's post-build-hook pointing at nixs3q-hook.
#
# The socket and state paths below are the defaults compiled into nixs3q-hook
# and the nixs3q CLI (hook.DefaultSocket, hook.DefaultStateDir). The hook runs
# as root inside nix-daemon with nix-daemon's environment, where nothing sets
# NIXS3Q_SOCKET or NIXS3Q_STATE_DIR; keep these paths equal to the defaults so
# that the hook and the CLI find the daemon without any configuration.
{ config, lib, pkgs, utils, ... }:

let
  cfg = config.services.nixs3q;
  inherit (lib) mkOption types;

  socketPath = "/run/nixs3q/nixs3q.sock";
  stateDir = "/var/lib/nixs3q";

  daemonArgs = [
    "--store" cfg.storeUrl
    "--state-dir" stateDir
    "--socket" socketPath
    "--workers" cfg.workers
    "--compression" cfg.compression
    "--allow-group" cfg.allowGroup
    "--max-attempts" cfg.maxAttempts
    "--shutdown-grace" "${toString cfg.shutdownGrace}s"
    "--log-level" cfg.logLevel
    "--log-format" "json"
    "--upload-logs" cfg.uploadLogs
  ]
  ++ lib.optionals (cfg.compressionLevel != null) [ "--compression-level" cfg.compressionLevel ]
  ++ lib.optionals (cfg.metricsListen != null) [ "--metrics-listen" cfg.metricsListen ]
  ++ builtins.concatMap (key: [ "--skip-signed-by" key ]) cfg.skipSignedBy
  ++ lib.optionals (cfg.exclude != null) [ "--exclude" cfg.exclude ]
  ++ lib.optionals (cfg.maxNarSize != null) [ "--max-nar-size" (toString cfg.maxNarSize) ]
  ++ cfg.extraArgs;
in
{
  options.services.nixs3q = {
    enable = lib.mkEnableOption "nixs3q, which publishes every path this machine builds to a binary cache";

    package = mkOption {
      type = types.package;
      default = pkgs.nixs3q or (throw
        "services.nixs3q.package: pkgs.nixs3q does not exist; use the nixs3q flake's nixosModules.default or overlays.default, or set this option");
      defaultText = lib.literalExpression "pkgs.nixs3q";
      description = "The nixs3q package; it provides both `nixs3q` and `nixs3q-hook`.";
    };

    storeUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "s3://my-cache?region=eu-west-1";
      description = ''
        The binary cache to publish to, as a Nix store URL: `s3://BUCKET?region=...`,
        `s3://BUCKET?endpoint=http://minio:9000&region=us-east-1` for MinIO and
        other S3-compatible servers, or `file:///DIR`.
      '';
    };

    secretKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/keys/nixs3q-cache.sec";
      description = ''
        File holding the signing key (`NAME:BASE64`), as made by
        `nix key generate-secret --key-name NAME`. A string rather than a path so
        that the key is never copied into the world-readable Nix store: systemd
        reads it as root (LoadCredential) and hands the daemon a private copy, so
        the file may be owned by root with mode 0400.
      '';
    };

    environmentFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/keys/nixs3q-aws.env";
      description = ''
        systemd EnvironmentFile with the S3 credentials and settings, e.g.
        `AWS_ACCESS_KEY_ID=...` and `AWS_SECRET_ACCESS_KEY=...` (or `AWS_PROFILE`,
        `AWS_SHARED_CREDENTIALS_FILE`). Read by systemd as root; not copied into
        the store. Not needed on EC2 with an instance role.
      '';
    };

    workers = mkOption {
      type = types.ints.positive;
      default = 4;
      description = "Queued paths processed at once; also the number of NARs uploaded at once.";
    };

    compression = mkOption {
      type = types.enum [ "zstd" "xz" "none" ];
      default = "zstd";
      description = "Compression of uploaded NARs. Overrides a `compression` parameter in storeUrl.";
    };

    compressionLevel = mkOption {
      type = types.nullOr types.ints.unsigned;
      default = null;
      example = 9;
      description = "Compression level (zstd 1-22, xz 0-9); null for the compressor's default.";
    };

    allowGroup = mkOption {
      type = types.nonEmptyStr;
      default = "nixs3q";
      example = "wheel";
      description = ''
        Group that owns the daemon's socket. Its members (besides root) may use
        the `nixs3q` CLI: queue paths with `nixs3q push`, retry failures, see
        `nixs3q status` and `nixs3q wait`. The group is created if missing.
      '';
    };

    maxAttempts = mkOption {
      type = types.ints.positive;
      default = 8;
      description = "Attempts before a path moves to the failed list (see `nixs3q status`, `nixs3q retry`).";
    };

    shutdownGrace = mkOption {
      type = types.ints.unsigned;
      default = 10;
      description = ''
        Seconds in-flight uploads may take to finish after the service is
        stopped. Unfinished paths stay queued and resume at the next start.
      '';
    };

    logLevel = mkOption {
      type = types.enum [ "debug" "info" "warn" "error" ];
      default = "info";
      description = "Log level of the daemon (logs go to the journal as JSON).";
    };

    metricsListen = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "127.0.0.1:9310";
      description = "Address to serve Prometheus metrics on at `/metrics`; null disables it.";
    };

    skipSignedBy = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
      description = ''
        Public keys of upstream caches, as in `nix.settings.trusted-public-keys`
        (`name:base64`). Closure members carrying a valid signature by one of
        them (typically everything substituted from cache.nixos.org) are not
        uploaded; clients must then use that upstream cache as well. A bare
        key name is refused: anyone can sign under any name. Empty: the cache
        holds complete closures on its own.
      '';
    };

    exclude = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "^(secrets-|.*-vm-image)";
      description = ''
        Regular expression (RE2, unanchored) matched against the name of
        every store path, the part after the hash. A matching path is not
        uploaded, and neither is any path that refers to it (it is held back,
        so that the cache never holds a path whose references are missing),
        nor the build log of a derivation whose name (`foo.drv`) matches.
        Filtered paths are counted in `nixs3q status` and logged.
      '';
    };

    maxNarSize = mkOption {
      type = types.nullOr (types.either types.ints.unsigned types.str);
      default = null;
      example = "2G";
      description = ''
        Paths whose NAR is larger than this (bytes, or with a K, M, G or T
        suffix) are not uploaded, nor the paths that refer to them, as with
        `exclude`. null: no limit.
      '';
    };

    uploadLogs = mkOption {
      type = types.enum [ "none" "all" ];
      default = "none";
      description = ''
        Build logs to upload to `log/<drv>`, where `nix log` finds them:
        `none`, or `all` (every build the post-build-hook reports, that is
        every successful local build: Nix runs no hook after a failed one).
        Logs can hold what a public cache should not show, hence the default.
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--presence-ttl" "30m" ];
      description = "Further arguments to `nixs3q daemon` (see `nixs3q daemon -h`).";
    };

    gc = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Run `nixs3q gc` on a timer on this machine: delete from the cache
          what no recent, re-asserted or pinned closure needs (see `nixs3q gc -h`
          and `nixs3q pin`). Enable it on one machine per cache; a second run
          at the same time refuses to start. The cache's credentials must allow
          s3:DeleteObject and s3:ListBucket.
        '';
      };
      keepDays = mkOption {
        type = types.ints.unsigned;
        default = 30;
        description = ''
          Keep the closures of paths published, and of roots pushed again, in
          the last this many days, and of every pin.
        '';
      };
      schedule = mkOption {
        type = types.nonEmptyStr;
        default = "weekly";
        example = "*-*-* 03:00:00";
        description = "When to collect, as a systemd calendar event (OnCalendar).";
      };
    };

    enableHook = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Set nix.settings.post-build-hook to nixs3q-hook, so that everything this
        machine builds is queued for upload. The hook returns within about two
        seconds and never fails a build; when the daemon is down it spools the
        paths to ${stateDir}/spool for the daemon to pick up later.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.storeUrl != null;
        message = "services.nixs3q.storeUrl must be set, e.g. \"s3://my-cache?region=eu-west-1\".";
      }
      {
        assertion = cfg.secretKeyFile != null && lib.hasPrefix "/" cfg.secretKeyFile;
        message = "services.nixs3q.secretKeyFile must be set to an absolute path (a file made by `nix key generate-secret`).";
      }
      {
        assertion = builtins.all (key: builtins.match "[^:]+:[A-Za-z0-9+/=]+" key != null) cfg.skipSignedBy;
        message = "services.nixs3q.skipSignedBy takes full public keys, name:base64 as in trusted-public-keys (e.g. \"cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\"), not bare key names.";
      }
      {
        # The daemon reads store metadata through nix-daemon as user nixs3q.
        assertion =
          let allowed = config.nix.settings.allowed-users or [ "*" ];
          in lib.elem "*" allowed || lib.elem "nixs3q" allowed || lib.elem "@nixs3q" allowed;
        message = "services.nixs3q: nix.settings.allowed-users must include \"nixs3q\" (the daemon asks nix-daemon for path metadata).";
      }
    ];
    warnings = lib.optional (cfg.secretKeyFile != null && lib.hasPrefix builtins.storeDir cfg.secretKeyFile)
      "services.nixs3q.secretKeyFile is in the Nix store, where every local user can read it.";

    users.users.nixs3q = {
      isSystemUser = true;
      group = "nixs3q";
      description = "nixs3q upload daemon";
    };
    # allowGroup may be "nixs3q" itself, or an existing group such as wheel.
    users.groups = lib.genAttrs [ "nixs3q" cfg.allowGroup ] (_: { });

    environment.systemPackages = [ cfg.package ];

    # The hook runs as root under nix-daemon and finds the daemon at the
    # default socket, so it needs no environment of its own.
    nix.settings.post-build-hook = lib.mkIf cfg.enableHook "${cfg.package}/bin/nixs3q-hook";

    # The hook (root) gives the spool files it writes to the owner of the state
    # directory, so that directory must belong to the daemon's user from the
    # start, even for builds before the daemon's first start.
    systemd.tmpfiles.rules = [
      "d ${stateDir} 0700 nixs3q nixs3q -"
      "d ${stateDir}/spool 0700 nixs3q nixs3q -"
    ];

    # systemd owns the socket: it exists from early boot, survives daemon
    # restarts (connections queue in the backlog meanwhile), and its mode and
    # group are the first access check; the daemon checks peer credentials too.
    systemd.sockets.nixs3q = {
      description = "nixs3q queue socket";
      wantedBy = [ "sockets.target" ];
      listenStreams = [ socketPath ];
      socketConfig = {
        SocketMode = "0660";
        SocketUser = "root";
        SocketGroup = cfg.allowGroup;
        RemoveOnStop = true;
      };
    };

    # gc talks to the bucket directly; it needs the credentials, not the
    # daemon. Persistent: a run missed while the machine was off happens at
    # the next boot.
    systemd.timers.nixs3q-gc = lib.mkIf cfg.gc.enable {
      description = "Collect garbage in the nixs3q binary cache";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.gc.schedule;
        Persistent = true;
        RandomizedDelaySec = "10m";
      };
    };
    systemd.services.nixs3q-gc = lib.mkIf cfg.gc.enable {
      description = "nixs3q gc: delete what no recent, re-asserted or pinned closure needs";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      environment.XDG_CACHE_HOME = "/var/cache/nixs3q";
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${utils.escapeSystemdExecArg "${cfg.package}/bin/nixs3q"} gc"
          + " ${utils.escapeSystemdExecArgs [ "--store" cfg.storeUrl "--keep-days" cfg.gc.keepDays ]}";
        User = "nixs3q";
        Group = "nixs3q";
        UMask = "0077";
        # Exit status 3: another gc holds the cache's lock; not a failure.
        SuccessExitStatus = [ 3 ];
        CapabilityBoundingSet = "";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectControlGroups = true;
        RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
        RestrictNamespaces = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" "~@privileged" ];
        SystemCallErrorNumber = "EPERM";
      } // lib.optionalAttrs (cfg.environmentFile != null) {
        EnvironmentFile = cfg.environmentFile;
      };
    };

    systemd.services.nixs3q = {
      description = "nixs3q: publish Nix build outputs to a binary cache";
      # Started at boot, not only on the first connection, so that paths
      # queued or spooled before a reboot are uploaded without a new build.
      wantedBy = [ "multi-user.target" ];
      requires = [ "nixs3q.socket" ];
      wants = [ "network-online.target" ];
      after = [ "nixs3q.socket" "network-online.target" "nix-daemon.socket" ];
      # `nix path-info` reads store metadata through nix-daemon.
      path = [ config.nix.package ];
      environment = {
        NIX_REMOTE = "daemon";
        # Somewhere writable for Nix's caches under ProtectSystem=strict.
        XDG_CACHE_HOME = "/var/cache/nixs3q";
      };

      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        # The daemon feeds the watchdog only while its queue answers.
        WatchdogSec = 60;
        Restart = "on-failure";
        RestartSec = 5;
        # Exit status 2 is a configuration error: retrying cannot fix it.
        RestartPreventExitStatus = 2;
        # Room for the shutdown grace plus closing the queue.
        TimeoutStopSec = cfg.shutdownGrace + 20;

        # %d is the credentials directory ($CREDENTIALS_DIRECTORY). Every other
        # argument is escaped for systemd, which expands % and $ in ExecStart.
        ExecStart = "${utils.escapeSystemdExecArg "${cfg.package}/bin/nixs3q"} daemon"
          + " --secret-key-file %d/secret-key ${utils.escapeSystemdExecArgs daemonArgs}";
        LoadCredential = "secret-key:${toString cfg.secretKeyFile}";

        User = "nixs3q";
        Group = "nixs3q";
        StateDirectory = "nixs3q";
        StateDirectoryMode = "0700";
        CacheDirectory = "nixs3q";
        CacheDirectoryMode = "0700";
        # No RuntimeDirectory: /run/nixs3q belongs to the socket unit, and a
        # RuntimeDirectory would be wiped, socket included, when the service stops.
        UMask = "0077";

        # Hardening. The daemon only needs to read /nix/store (world-readable),
        # write its state directory, talk to nix-daemon and its own socket
        # (AF_UNIX; connecting to a socket works on a read-only mount), and
        # reach S3 (AF_INET*).
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        # Go and Nix raise their own limits with prlimit64, which @system-service
        # keeps; ~@resources only removes setrlimit, setpriority and the like.
        SystemCallFilter = [ "@system-service" "~@privileged" "~@resources" ];
        # A call outside the filter fails with EPERM instead of killing the
        # daemon in the middle of an upload.
        SystemCallErrorNumber = "EPERM";
        # Not PrivateUsers: inside a user namespace, peers' uids (root's hook
        # among them) would read as nobody and be refused.
      } // lib.optionalAttrs (cfg.environmentFile != null) {
        EnvironmentFile = cfg.environmentFile;
      };
    };
  };
}
