package progress

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Snapshot is the state of a set of uploads at one moment.
type Snapshot struct {
	// PathsTotal is the number of store paths the operation covers: the
	// closures of its roots, or the roots themselves while their closures
	// are not known yet. 0 means not known yet.
	PathsTotal int
	// Uploaded, Present and Failed count the paths finished so far:
	// published by this operation, found already in the cache (or in an
	// upstream cache), and failed.
	Uploaded, Present, Failed int
	// BytesTotal is the NAR size of the paths to upload; BytesDone the NAR
	// bytes streamed so far (finished NARs and the parts of those being
	// uploaded).
	BytesTotal, BytesDone int64
	// Largest is the largest NAR being uploaded now; Path is empty when
	// none is.
	Largest Transfer
	// Note, when set, is shown after the counts, for example "3 queued
	// ahead" or "retrying: the cache did not answer".
	Note string
}

// Transfer is one NAR being uploaded.
type Transfer struct {
	Path string
	Size int64 // NAR size
	Done int64 // NAR bytes streamed so far
}

// Done is the number of paths finished, whatever the outcome.
func (s Snapshot) Done() int { return s.Uploaded + s.Present + s.Failed }

// Bytes formats n bytes with binary units: "512 B", "1.5 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Duration formats d for people, rounded to what matters: "45s", "3m05s",
// "2h10m".
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds()))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}

// ShortName is a store path's name without the store directory and with
// the hash cut to 7 characters: "/nix/store/abcdefgh...-hello-2.12" becomes
// "abcdefg-hello-2.12". Other strings are returned as they are.
func ShortName(p string) string {
	base := path.Base(p)
	hash, name, ok := strings.Cut(base, "-")
	if !ok || len(hash) != 32 {
		return base
	}
	return hash[:7] + "-" + name
}

func percent(done, total int64) int {
	if total <= 0 {
		return 100
	}
	return int(100 * done / total)
}
