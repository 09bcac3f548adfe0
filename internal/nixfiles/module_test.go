package nixfiles

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixs3q/nixs3q/hook"
	"github.com/nixs3q/nixs3q/internal/testenv"
)

// evaluation is what testdata/eval-module.nix prints.
type evaluation struct {
	Options map[string]struct {
		Type           string
		HasDescription bool
		HasDefault     bool
		DefaultOK      bool
		ValueOK        bool
	}
	Config json.RawMessage
}

// moduleConfig is the part of the module's config the tests look at.
type moduleConfig struct {
	Assertions []struct {
		Assertion bool
		Message   string
	}
	Users struct {
		Users map[string]struct {
			IsSystemUser bool
			Group        string
		}
		Groups map[string]any
	}
	Nix struct {
		Settings map[string]any
	}
	Systemd struct {
		Sockets map[string]struct {
			ListenStreams []string
			WantedBy      []string
			SocketConfig  map[string]any
		}
		Services map[string]struct {
			Requires, After, WantedBy []string
			ServiceConfig             map[string]any
		}
		Timers map[string]struct {
			WantedBy    []string
			TimerConfig map[string]any
		}
		Tmpfiles struct{ Rules []string }
	}
}

const stubPackage = "/nix/store/00000000000000000000000000000000-nixs3q-stub"

// evalModule evaluates nixos-module/default.nix with the given
// services.nixs3q values and nix.settings.
// With only, just those top-level config attributes are evaluated.
func evalModule(t *testing.T, env []string, root string, cfg, nixSettings map[string]any, only ...string) evaluation {
	t.Helper()
	settings, err := json.Marshal(map[string]any{"cfg": cfg, "nix": nixSettings, "only": only})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "nix-instantiate", "--eval", "--strict", "--json",
		filepath.Join(root, "internal", "nixfiles", "testdata", "eval-module.nix"),
		"--argstr", "modulePath", filepath.Join(root, "nixos-module", "default.nix"),
		"--argstr", "settings", string(settings))
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("evaluating the module: %v\n%s", err, stderr.String())
	}
	var ev evaluation
	if err := json.Unmarshal(out, &ev); err != nil {
		t.Fatalf("decoding the evaluation: %v\n%s", err, out)
	}
	return ev
}

func TestModuleOptions(t *testing.T) {
	env := testenv.RequireNix(t)
	ev := evalModule(t, env, repoRoot(t), nil, nil)
	for _, name := range []string{
		"enable", "package", "storeUrl", "secretKeyFile", "environmentFile", "workers",
		"compression", "compressionLevel", "allowGroup", "maxAttempts", "logLevel",
		"extraArgs", "metricsListen", "enableHook", "shutdownGrace",
		"gc.enable", "gc.keepDays", "gc.schedule",
		"skipSignedBy", "exclude", "maxNarSize", "uploadLogs",
	} {
		if _, ok := ev.Options[name]; !ok {
			t.Errorf("services.nixs3q.%s is not declared", name)
		}
	}
	for name, o := range ev.Options {
		if !o.HasDescription {
			t.Errorf("services.nixs3q.%s has no description", name)
		}
		if !o.HasDefault || !o.DefaultOK {
			t.Errorf("services.nixs3q.%s: default missing or not a %s", name, o.Type)
		}
	}
	if string(ev.Config) != "{}" {
		t.Errorf("a disabled module defines config: %s", ev.Config)
	}
}

// upstreamKey is cache.nixos.org's public key.
const upstreamKey = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="

func TestModuleConfig(t *testing.T) {
	env := testenv.RequireNix(t)
	root := repoRoot(t)
	daemon := buildDaemon(t, root)
	const creds = "/run/credentials/nixs3q.service"

	base := map[string]any{"enable": true, "storeUrl": "s3://my-cache?region=eu-west-1", "secretKeyFile": "/run/keys/cache.sec"}
	with := func(kv map[string]any) map[string]any {
		m := make(map[string]any, len(base)+len(kv))
		for k, v := range base {
			m[k] = v
		}
		for k, v := range kv {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name        string
		cfg         map[string]any
		nix         map[string]any
		wantFlags   map[string]string
		absentFlags []string
		noHook      bool
		gc          []string // the gc service's arguments after "gc"; nil: no gc timer
		schedule    string
		failing     string // substring of the one assertion that must fail
	}{
		{
			name: "defaults",
			cfg:  base,
			wantFlags: map[string]string{
				"--store": "s3://my-cache?region=eu-west-1", "--secret-key-file": creds + "/secret-key",
				"--state-dir": hook.DefaultStateDir, "--socket": hook.DefaultSocket, "--workers": "4",
				"--compression": "zstd", "--allow-group": "nixs3q", "--max-attempts": "8",
				"--shutdown-grace": "10s", "--log-level": "info", "--log-format": "json",
				"--upload-logs": "none",
			},
			absentFlags: []string{"--compression-level", "--metrics-listen", "--skip-signed-by", "--exclude", "--max-nar-size"},
		},
		{
			name: "every option, and characters systemd would expand",
			cfg: with(map[string]any{
				"storeUrl": "s3://cache?endpoint=http://minio:9000&region=us-east-1&x=%41$HOME %d", "workers": 16,
				"compression": "xz", "compressionLevel": 9, "allowGroup": "wheel", "maxAttempts": 3,
				"shutdownGrace": 30, "logLevel": "debug", "metricsListen": "127.0.0.1:9310",
				"environmentFile": "/run/keys/aws.env", "extraArgs": []string{"--presence-ttl", "30m"},
				"skipSignedBy": []string{upstreamKey},
				"exclude":      "^(secrets-|.*-vm-image)$", "maxNarSize": "2G", "uploadLogs": "all",
			}),
			wantFlags: map[string]string{
				"--store":   "s3://cache?endpoint=http://minio:9000&region=us-east-1&x=%41$HOME %d",
				"--workers": "16", "--compression": "xz", "--compression-level": "9", "--allow-group": "wheel",
				"--max-attempts": "3", "--shutdown-grace": "30s", "--log-level": "debug",
				"--metrics-listen": "127.0.0.1:9310", "--presence-ttl": "30m", "--skip-signed-by": upstreamKey,
				"--exclude": "^(secrets-|.*-vm-image)$", "--max-nar-size": "2G", "--upload-logs": "all",
			},
		},
		{
			name:      "size in bytes",
			cfg:       with(map[string]any{"maxNarSize": 1073741824}),
			wantFlags: map[string]string{"--max-nar-size": "1073741824"},
		},
		{name: "hook disabled", cfg: with(map[string]any{"enableHook": false}), noHook: true},
		{
			name: "gc with defaults", cfg: with(map[string]any{"gc": map[string]any{"enable": true}}),
			gc: []string{"--store", "s3://my-cache?region=eu-west-1", "--keep-days", "30"}, schedule: "weekly",
		},
		{
			name: "gc every night, keeping a week",
			cfg: with(map[string]any{"environmentFile": "/run/keys/aws.env",
				"gc": map[string]any{"enable": true, "keepDays": 7, "schedule": "*-*-* 03:00:00"}}),
			gc: []string{"--store", "s3://my-cache?region=eu-west-1", "--keep-days", "7"}, schedule: "*-*-* 03:00:00",
		},
		{name: "allowed-users lists nixs3q", cfg: base, nix: map[string]any{"allowed-users": []string{"@wheel", "nixs3q"}}},
		{name: "no store URL", cfg: with(map[string]any{"storeUrl": nil}), failing: "storeUrl"},
		{name: "relative key file", cfg: with(map[string]any{"secretKeyFile": "cache.sec"}), failing: "secretKeyFile"},
		{name: "bare upstream key name", cfg: with(map[string]any{"skipSignedBy": []string{"cache.nixos.org-1"}}), failing: "skipSignedBy"},
		{name: "nix-daemon refuses the daemon's user", cfg: base, nix: map[string]any{"allowed-users": []string{"@wheel"}}, failing: "allowed-users"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var only []string
			if tc.failing != "" {
				only = []string{"assertions"}
			}
			ev := evalModule(t, env, root, tc.cfg, tc.nix, only...)
			for name, o := range ev.Options {
				if !o.ValueOK {
					t.Fatalf("services.nixs3q.%s is not a %s (test setting: %v)", name, o.Type, tc.cfg[name])
				}
			}
			var c moduleConfig
			if err := json.Unmarshal(ev.Config, &c); err != nil {
				t.Fatal(err)
			}
			var failed []string
			for _, a := range c.Assertions {
				if !a.Assertion {
					failed = append(failed, a.Message)
				}
			}
			if tc.failing != "" {
				if len(failed) != 1 || !strings.Contains(failed[0], tc.failing) {
					t.Errorf("failed assertions %q, want exactly one about %s", failed, tc.failing)
				}
				return
			}
			if len(failed) > 0 {
				t.Errorf("failed assertions: %q", failed)
			}
			checkUnits(t, c, tc.cfg)
			checkGC(t, c, tc.cfg, tc.gc, tc.schedule)

			hookPath, hasHook := c.Nix.Settings["post-build-hook"]
			if tc.noHook && hasHook {
				t.Errorf("post-build-hook %v set with enableHook = false", hookPath)
			}
			if !tc.noHook && hookPath != stubPackage+"/bin/nixs3q-hook" {
				t.Errorf("post-build-hook = %v, want the package's nixs3q-hook", hookPath)
			}

			execStart, _ := c.Systemd.Services["nixs3q"].ServiceConfig["ExecStart"].(string)
			args, err := execArgs(execStart, creds)
			if err != nil {
				t.Fatalf("ExecStart %q: %v", execStart, err)
			}
			if len(args) < 2 || args[0] != stubPackage+"/bin/nixs3q" || args[1] != "daemon" {
				t.Fatalf("ExecStart runs %q, want the package's nixs3q daemon", args)
			}
			flags, err := flagValues(args[2:])
			if err != nil {
				t.Fatal(err)
			}
			for f, want := range tc.wantFlags {
				if got, ok := flags[f]; !ok || got != want {
					t.Errorf("%s = %q (given: %v), want %q", f, got, ok, want)
				}
			}
			for _, f := range tc.absentFlags {
				if v, ok := flags[f]; ok {
					t.Errorf("%s %q given, want it absent", f, v)
				}
			}
			checkDaemonAccepts(t, daemon, args[2:])
		})
	}
}

// checkUnits checks the socket, service, user and spool that every enabled
// configuration must have.
func checkUnits(t *testing.T, c moduleConfig, cfg map[string]any) {
	t.Helper()
	group, _ := cfg["allowGroup"].(string)
	if group == "" {
		group = "nixs3q"
	}
	sock := c.Systemd.Sockets["nixs3q"]
	if !slices.Equal(sock.ListenStreams, []string{hook.DefaultSocket}) {
		t.Errorf("socket listens on %q, want the hook's default %s", sock.ListenStreams, hook.DefaultSocket)
	}
	if sock.SocketConfig["SocketGroup"] != group || sock.SocketConfig["SocketMode"] != "0660" {
		t.Errorf("socket config %v, want mode 0660 and group %s", sock.SocketConfig, group)
	}
	if !slices.Contains(sock.WantedBy, "sockets.target") {
		t.Errorf("socket wanted by %q", sock.WantedBy)
	}
	if _, ok := c.Users.Groups[group]; !ok {
		t.Errorf("group %s not declared (groups %v)", group, c.Users.Groups)
	}
	if u := c.Users.Users["nixs3q"]; !u.IsSystemUser || u.Group != "nixs3q" {
		t.Errorf("user nixs3q = %+v", u)
	}

	svc := c.Systemd.Services["nixs3q"]
	sc := svc.ServiceConfig
	if "/var/lib/"+sc["StateDirectory"].(string) != hook.DefaultStateDir {
		t.Errorf("StateDirectory %v is not the hook's default %s", sc["StateDirectory"], hook.DefaultStateDir)
	}
	if sc["User"] != "nixs3q" || sc["Type"] != "notify" {
		t.Errorf("service runs as %v with Type %v", sc["User"], sc["Type"])
	}
	if sc["LoadCredential"] != "secret-key:"+cfg["secretKeyFile"].(string) {
		t.Errorf("LoadCredential = %v", sc["LoadCredential"])
	}
	if ef, ok := cfg["environmentFile"]; ok != (sc["EnvironmentFile"] != nil) || (ok && sc["EnvironmentFile"] != ef) {
		t.Errorf("EnvironmentFile = %v, want %v", sc["EnvironmentFile"], ef)
	}
	if _, ok := sc["RuntimeDirectory"]; ok {
		t.Error("RuntimeDirectory would remove the socket's directory when the service stops")
	}
	grace := 10.0
	if g, ok := cfg["shutdownGrace"].(int); ok {
		grace = float64(g)
	}
	if stop, _ := sc["TimeoutStopSec"].(float64); stop <= grace {
		t.Errorf("TimeoutStopSec %v does not exceed the shutdown grace %vs", sc["TimeoutStopSec"], grace)
	}
	if !slices.Contains(svc.Requires, "nixs3q.socket") || !slices.Contains(svc.After, "nixs3q.socket") {
		t.Errorf("service requires %q, after %q; want nixs3q.socket in both", svc.Requires, svc.After)
	}
	spool := hook.SpoolDir(hook.DefaultStateDir)
	if !slices.Contains(c.Systemd.Tmpfiles.Rules, "d "+spool+" 0700 nixs3q nixs3q -") {
		t.Errorf("tmpfiles rules %q do not create %s for the daemon's user", c.Systemd.Tmpfiles.Rules, spool)
	}
}

// checkGC checks the gc timer and service: absent unless enabled, else
// running "nixs3q gc" with wantArgs on
// schedule, with the daemon's user and credentials.
func checkGC(t *testing.T, c moduleConfig, cfg map[string]any, wantArgs []string, schedule string) {
	t.Helper()
	svc, hasSvc := c.Systemd.Services["nixs3q-gc"]
	timer, hasTimer := c.Systemd.Timers["nixs3q-gc"]
	if wantArgs == nil {
		if hasSvc || hasTimer {
			t.Errorf("gc service or timer defined with gc disabled")
		}
		return
	}
	if !hasSvc || !hasTimer {
		t.Fatalf("gc enabled but service (%v) or timer (%v) missing", hasSvc, hasTimer)
	}
	if timer.TimerConfig["OnCalendar"] != schedule || timer.TimerConfig["Persistent"] != true || !slices.Contains(timer.WantedBy, "timers.target") {
		t.Errorf("timer %+v, want OnCalendar %q, Persistent, wanted by timers.target", timer, schedule)
	}
	sc := svc.ServiceConfig
	if sc["Type"] != "oneshot" || sc["User"] != "nixs3q" {
		t.Errorf("gc service Type %v User %v", sc["Type"], sc["User"])
	}
	if ef, ok := cfg["environmentFile"]; ok != (sc["EnvironmentFile"] != nil) || (ok && sc["EnvironmentFile"] != ef) {
		t.Errorf("gc EnvironmentFile = %v, want %v", sc["EnvironmentFile"], ef)
	}
	execStart, _ := sc["ExecStart"].(string)
	args, err := execArgs(execStart, "/run/credentials/nixs3q-gc.service")
	if err != nil {
		t.Fatalf("ExecStart %q: %v", execStart, err)
	}
	if len(args) < 2 || args[0] != stubPackage+"/bin/nixs3q" || args[1] != "gc" || !slices.Equal(args[2:], wantArgs) {
		t.Errorf("gc ExecStart runs %q, want nixs3q gc %q", args, wantArgs)
	}
}
