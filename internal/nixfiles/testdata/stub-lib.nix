# A stand-in for the parts of nixpkgs' lib that nixos-module/default.nix uses,
# so that the module can be evaluated where nixpkgs is not available. Option
# types carry a check function; mkIf, mkDefault and mkForce become markers
# that eval-module.nix resolves. A function missing here makes the evaluation
# fail with "attribute ... missing": add it, with nixpkgs' meaning.
let
  mkType = name: check: { _type = "option-type"; inherit name check; };
  isStorePath = v: builtins.isString v && builtins.substring 0 11 v == "/nix/store/";
  concatStringsSep = builtins.concatStringsSep;
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
in
rec {
  types = {
    bool = mkType "bool" builtins.isBool;
    str = mkType "str" builtins.isString;
    nonEmptyStr = mkType "nonEmptyStr" (v: builtins.isString v && builtins.match "[[:space:]]*" v == null);
    int = mkType "int" builtins.isInt;
    ints = {
      positive = mkType "positive int" (v: builtins.isInt v && v > 0);
      unsigned = mkType "unsigned int" (v: builtins.isInt v && v >= 0);
    };
    package = mkType "package" (v: isStorePath v || (builtins.isAttrs v && (v.type or null) == "derivation"));
    enum = values: mkType "one of ${concatStringsSep ", " values}" (v: builtins.elem v values);
    nullOr = t: mkType "null or ${t.name}" (v: v == null || t.check v);
    listOf = t: mkType "list of ${t.name}" (v: builtins.isList v && builtins.all t.check v);
    either = a: b: mkType "${a.name} or ${b.name}" (v: a.check v || b.check v);
  };

  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption {
    type = types.bool;
    default = false;
    description = "Whether to enable ${name}.";
  };
  literalExpression = text: { _type = "literalExpression"; inherit text; };

  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkDefault = content: { _type = "override"; priority = 1000; inherit content; };
  mkForce = content: { _type = "override"; priority = 50; inherit content; };

  inherit concatStringsSep hasPrefix;
  concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
  elem = builtins.elem;
  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  optionalAttrs = cond: attrs: if cond then attrs else { };
  optionalString = cond: s: if cond then s else "";
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
}
