package nixfiles

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// execArgs splits an ExecStart line into the arguments systemd passes, for
// the syntax the module emits: words separated by spaces, "..." words with C
// escapes, %% and $$ for a literal % and $, and %d for the credentials
// directory. Anything else systemd would expand is an error.
func execArgs(line, credsDir string) ([]string, error) {
	var args []string
	for i := 0; i < len(line); {
		var word string
		switch line[i] {
		case ' ':
			i++
			continue
		case '"':
			end := i + 1
			for end < len(line) && line[end] != '"' {
				if line[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(line) {
				return nil, fmt.Errorf("unterminated quote at %q", line[i:])
			}
			w, err := strconv.Unquote(line[i : end+1])
			if err != nil {
				return nil, fmt.Errorf("quoted word %s: %w", line[i:end+1], err)
			}
			if end+1 < len(line) && line[end+1] != ' ' {
				return nil, fmt.Errorf("no space after the quoted word %s", line[i:end+1])
			}
			word, i = w, end+1
		default:
			end := strings.IndexByte(line[i:], ' ')
			if end < 0 {
				end = len(line) - i
			}
			word, i = line[i:i+end], i+end
			if strings.ContainsAny(word, `"'\`) {
				return nil, fmt.Errorf("unquoted word %q has quotes or escapes", word)
			}
		}
		w, err := expandSpecifiers(word, credsDir)
		if err != nil {
			return nil, err
		}
		args = append(args, w)
	}
	return args, nil
}

func expandSpecifiers(word, credsDir string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(word); i++ {
		c := word[i]
		if c != '%' && c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(word) {
			return "", fmt.Errorf("lone %c at the end of %q", c, word)
		}
		i++
		switch next := word[i]; {
		case next == c:
			b.WriteByte(c)
		case c == '%' && next == 'd':
			b.WriteString(credsDir)
		default:
			return "", fmt.Errorf("systemd would expand %c%c in %q", c, next, word)
		}
	}
	return b.String(), nil
}

func TestExecArgs(t *testing.T) {
	tests := []struct {
		line    string
		want    []string
		wantErr bool
	}{
		{line: `"/bin/x" daemon --k %d/key "a b" "100%%" "$$HOME" "q\"uote\\"`, want: []string{"/bin/x", "daemon", "--k", "/creds/key", "a b", "100%", "$HOME", `q"uote\`}},
		{line: `  a   b  `, want: []string{"a", "b"}},
		{line: `"%n"`, wantErr: true},
		{line: `"$HOME"`, wantErr: true},
		{line: `"50%"`, wantErr: true},
		{line: `"open`, wantErr: true},
		{line: `"a"b`, wantErr: true},
		{line: `it's`, wantErr: true},
	}
	for _, tc := range tests {
		got, err := execArgs(tc.line, "/creds")
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("execArgs(%s) = %q, %v; want %q (error: %v)", tc.line, got, err, tc.want, tc.wantErr)
		}
	}
}

// flagValues reads "--name value" pairs; every daemon flag takes a value.
func flagValues(args []string) (map[string]string, error) {
	flags := make(map[string]string)
	for i := 0; i < len(args); i += 2 {
		if !strings.HasPrefix(args[i], "--") || i+1 == len(args) {
			return nil, fmt.Errorf("arguments %q: %q is not a --flag followed by a value", args, args[i])
		}
		if _, dup := flags[args[i]]; dup {
			return nil, fmt.Errorf("arguments %q give %s twice", args, args[i])
		}
		flags[args[i]] = args[i+1]
	}
	return flags, nil
}

// buildDaemon builds cmd/nixs3q, whose flag parser is the judge of the
// arguments the module passes.
func buildDaemon(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nixs3q")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/nixs3q")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/nixs3q: %v\n%s", err, out)
	}
	return bin
}

// checkDaemonAccepts runs `nixs3q daemon ARGS -h`: the flag parser reads
// every argument before it reaches -h, so the usage text comes first only
// when each flag exists and each value parses.
func checkDaemonAccepts(t *testing.T, bin string, args []string) {
	t.Helper()
	out, _ := exec.CommandContext(t.Context(), bin, append(append([]string{"daemon"}, args...), "-h")...).CombinedOutput()
	if !strings.HasPrefix(string(out), "Usage: nixs3q daemon") {
		first, _, _ := strings.Cut(string(out), "\n")
		t.Errorf("nixs3q daemon refuses the module's arguments %q: %s", args, first)
	}
}
