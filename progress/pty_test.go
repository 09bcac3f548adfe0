package progress

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/nixs3q/nixs3q/internal/vt"
)

const ptyChildEnv = "NIXS3Q_PROGRESS_PTY_CHILD"

// ptyChild is the program TestUnderPseudoTerminal runs on a pty: it finds
// out for itself that stderr is a terminal and how wide, shows a live line,
// waits for the parent to look at the screen, then prints a message and
// the summary.
func ptyChild() {
	ok, size := Terminal(os.Stderr)
	if !ok {
		os.Stdout.WriteString("stderr is not a terminal\n")
		os.Exit(3)
	}
	d := New(Config{Out: os.Stderr, Terminal: true, Size: size, Redraw: time.Nanosecond})
	big := "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-llvm-17.0.6-with-a-name-so-long-that-the-line-does-not-fit-on-the-screen"
	for i := range 5 {
		d.Update(Snapshot{PathsTotal: 12, Uploaded: i, BytesTotal: 40 << 20, BytesDone: int64(i) << 20,
			Largest: Transfer{Path: big, Size: 20 << 20, Done: int64(i) << 20}})
	}
	go1 := os.NewFile(3, "go")
	var b [1]byte
	_, _ = go1.Read(b[:])
	d.Println("failed: /nix/store/x-y: access denied")
	d.Update(Snapshot{PathsTotal: 12, Uploaded: 10, Failed: 1, BytesTotal: 40 << 20, BytesDone: 39 << 20})
	d.Finish(Snapshot{PathsTotal: 12, Uploaded: 11, Failed: 1, BytesTotal: 40 << 20, BytesDone: 40 << 20})
	os.Exit(0)
}

func TestMain(m *testing.M) {
	if os.Getenv(ptyChildEnv) == "1" {
		ptyChild()
	}
	os.Exit(m.Run())
}

// TestUnderPseudoTerminal runs a display on a real pseudo-terminal,
// 120 columns wide, and checks the screen a person would see: while it
// runs, one live line that fits the width; at the end, the message and
// the summary, and no trace of the live line.
func TestUnderPseudoTerminal(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), ptyChildEnv+"=1", "TERM=xterm")
	goR, goW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{goR}
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 120, Rows: 10})
	goR.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer goW.Close()
	scr := vt.New(120, 10)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(scr, ptmx) // ends with EIO when the child exits
	}()

	live := waitScreen(t, scr, func(s string) bool { return strings.Contains(s, "4/12 paths") })
	wantLive := "4/12 paths, 4.0 MiB of 40.0 MiB, uploading 0123456-llvm-17.0.6-with-a-name-so-long-that-the-line-does-not-fit-on-the..."
	if len([]rune(wantLive)) != 119 {
		t.Fatalf("test wants a %d-column line", len([]rune(wantLive)))
	}
	if live != wantLive {
		t.Errorf("live screen:\n%q\nwant:\n%q", live, wantLive)
	}
	goW.Write([]byte{1})
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\nscreen:\n%s", err, scr.String())
	}
	<-copied
	final := scr.String()
	wantFinal := "failed: /nix/store/x-y: access denied\n" +
		"12/12 paths done in "
	if !strings.HasPrefix(final, wantFinal) || strings.Count(final, "\n") != 1 || strings.Contains(final, "uploading") {
		t.Errorf("final screen:\n%s\nwant the message, then the summary line only", final)
	}
	if !strings.Contains(final, ": 11 uploaded (40.0 MiB of NAR") || !strings.HasSuffix(final, "0 already in the cache, 1 failed") {
		t.Errorf("summary not as expected:\n%s", final)
	}
	if scr.Wrapped() {
		t.Error("a line wrapped on the terminal")
	}
}

func waitScreen(t *testing.T, scr *vt.Screen, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := scr.String()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("screen never showed what was expected; it shows:\n%s", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
