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
  # Options may be grouped one level deep (services.nixs3q.gc.enable); the
  # summary names those "gc.enable", and settings give them as {"gc": {...}}.
  isOption = o: (o._type or null) == "option";
  unknownIn = prefix: group: given:
    builtins.concatMap (n:
      if !(group ? ${n}) then [ "${prefix}${n}" ]
      else if isOption group.${n} then [ ]
      else unknownIn "${prefix}${n}." group.${n} (orEmpty given.${n}))
      (builtins.attrNames given);
  unknown = unknownIn "" opts cfgSettings;
  groupValue = given: group: builtins.mapAttrs (m: o: (orEmpty given).${m} or o.default) group;
  cfg =
    if unknown != [ ] then throw "no such option: services.nixs3q.${builtins.head unknown}"
    else builtins.mapAttrs (n: o: if isOption o then cfgSettings.${n} or o.default else groupValue (cfgSettings.${n} or null) o) opts;
  flatten = f: builtins.listToAttrs (builtins.concatMap (n:
    if isOption opts.${n} then [{ name = n; value = f opts.${n} cfg.${n}; }]
    else map (m: { name = "${n}.${m}"; value = f opts.${n}.${m} cfg.${n}.${m}; }) (builtins.attrNames opts.${n}))
    (builtins.attrNames opts));

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

  checkOption = o: value: {
    type = o.type.name;
    hasDescription = builtins.isString (o.description or null) && o.description != "";
    hasDefault = o ? default;
    defaultOK = o ? default && o.type.check o.default;
    # The value evaluated, after the settings, fits the type as well.
    valueOK = o.type.check value;
  };
in
{
  options = flatten checkOption;
  config =
    let only = s.only or null;
    in
    if only == null then resolved
    else builtins.intersectAttrs (builtins.listToAttrs (map (n: { name = n; value = null; }) only)) resolved;
}
