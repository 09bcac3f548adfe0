# Evaluates the NixOS module with stub-lib.nix and prints, as JSON, a summary
# of its options and the configuration it defines for the given settings.
#   modulePath: absolute path of the module
#   settings:   JSON {"cfg": {services.nixs3q values}, "nix": {nix.settings values},
#               "only": [top-level config attributes to print, or null for all]}
# With "only", the rest of the config is never evaluated: NixOS itself checks
# the assertions before it builds any unit from invalid settings.
{ modulePath, settings }:

let
  lib = import ./stub-lib.nix;
  s = builtins.fromJSON settings;
  stubPackage = "/nix/store/00000000000000000000000000000000-nixs3q-stub";

  # NixOS's utils.escapeSystemdExecArg(s), with the same meaning.
  utils = rec {
    escapeSystemdExecArg = arg:
      let
        str =
          if builtins.isString arg then arg
          else if builtins.isInt arg then toString arg
          else throw "escapeSystemdExecArg only allows strings and numbers, got ${builtins.typeOf arg}";
      in
      builtins.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON str);
    escapeSystemdExecArgs = args: builtins.concatStringsSep " " (map escapeSystemdExecArg args);
  };

  module = import (/. + modulePath) {
    inherit lib utils config;
    pkgs = { nixs3q = stubPackage; };
    options = { };
  };
  opts = module.options.services.nixs3q;

  orEmpty = v: if v == null then { } else v;
  cfgSettings = orEmpty (s.cfg or null);
  unknown = builtins.filter (n: !(opts ? ${n})) (builtins.attrNames cfgSettings);
  cfg =
    if unknown != [ ] then throw "no such option: services.nixs3q.${builtins.head unknown}"
    else builtins.mapAttrs (n: o: cfgSettings.${n} or o.default) opts;

  config = {
    services.nixs3q = cfg;
    nix = {
      package = "/nix/store/00000000000000000000000000000000-nix-stub";
      settings = orEmpty (s.nix or null);
    };
  };

  # Whether a definition is switched off by mkIf. It looks only at the markers,
  # so that resolving stays lazy.
  dropped = v:
    builtins.isAttrs v && (
      if (v._type or null) == "if" then !v.condition || dropped v.content
      else if (v._type or null) == "override" then dropped v.content
      else false
    );
  resolve = v:
    if builtins.isAttrs v && v ? _type then
      if v._type == "if" || v._type == "override" then resolve v.content
      else throw "eval-module.nix cannot resolve a ${v._type}"
    else if builtins.isAttrs v then
      builtins.mapAttrs (_: resolve)
        (builtins.removeAttrs v (builtins.filter (n: dropped v.${n}) (builtins.attrNames v)))
    else if builtins.isList v then map resolve v
    else v;
  resolved = if dropped module.config then { } else resolve module.config;

  checkOption = name: o: {
    type = o.type.name;
    hasDescription = builtins.isString (o.description or null) && o.description != "";
    hasDefault = o ? default;
    defaultOK = o ? default && o.type.check o.default;
    # The value evaluated, after the settings, fits the type as well.
    valueOK = o.type.check cfg.${name};
  };
in
{
  options = builtins.mapAttrs checkOption opts;
  config =
    let only = s.only or null;
    in
    if only == null then resolved
    else builtins.intersectAttrs (builtins.listToAttrs (map (n: { name = n; value = null; }) only)) resolved;
}
