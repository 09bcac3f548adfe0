package verify

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nixs3q/nixs3q/scan"
)

// Kind is a kind of problem.
type Kind string

// The kinds of problems, in the order reports list them.
const (
	CacheInfoMissing   Kind = "cache-info-missing"   // no nix-cache-info: clients refuse the cache
	CacheInfoStoreDir  Kind = "cache-info-store-dir" // nix-cache-info names another store directory
	NarInfoInvalid     Kind = "narinfo-invalid"      // a narinfo that cannot be parsed or used
	NarMissing         Kind = "nar-missing"          // a narinfo's NAR object is missing
	NarSize            Kind = "nar-size"             // a NAR object's size differs from FileSize
	NarHash            Kind = "nar-hash"             // a NAR does not hash to FileHash/NarHash or size NarSize
	ReferenceMissing   Kind = "reference-missing"    // a narinfo references a path without a narinfo
	ClosureIncomplete  Kind = "closure-incomplete"   // further down the closure, a narinfo is missing or invalid
	SignatureMissing   Kind = "signature-missing"    // a narinfo without any signature
	SignatureUntrusted Kind = "signature-untrusted"  // signatures, but none valid under a trusted key
	OrphanNar          Kind = "orphan-nar"           // a NAR no narinfo uses, older than the grace period
	PendingUpload      Kind = "pending-upload"       // an unfinished upload older than the grace period
)

// Kinds lists every kind, in report order.
var Kinds = []Kind{
	CacheInfoMissing, CacheInfoStoreDir, NarInfoInvalid, NarMissing, NarSize, NarHash,
	ReferenceMissing, ClosureIncomplete, SignatureMissing, SignatureUntrusted, OrphanNar, PendingUpload,
}

func kindRank(k Kind) int { return slices.Index(Kinds, k) }

// Problem is one confirmed problem, with the cache key at fault.
type Problem struct {
	Kind Kind `json:"kind"`
	// Key is the object at fault: a narinfo, a NAR, nix-cache-info, or the
	// key an unfinished upload was writing.
	Key       string `json:"key"`
	StorePath string `json:"store_path,omitempty"`
	// Other is the other object involved: the NAR a narinfo names, the
	// narinfo of a missing reference, the broken narinfo down a closure.
	Other    string  `json:"other,omitempty"`
	Size     int64   `json:"size,omitempty"`        // bytes of an orphan NAR or a NAR of the wrong size
	Age      float64 `json:"age_seconds,omitempty"` // of an orphan NAR or unfinished upload
	UploadID string  `json:"upload_id,omitempty"`
	Detail   string  `json:"detail"`

	node scan.ID // the narinfo's node, or -1
}

// Report is the result of Check.
type Report struct {
	Store    string    `json:"store"`
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_seconds"`

	Objects  int64 `json:"objects"`  // objects listed
	Bytes    int64 `json:"bytes"`    // their total size
	NarInfos int   `json:"narinfos"` // narinfos read
	Nars     int64 `json:"nars"`     // NAR objects listed
	NarBytes int64 `json:"nar_bytes"`

	NarsHashed  int   `json:"nars_hashed,omitempty"`  // with CheckNarHashes
	HashedBytes int64 `json:"hashed_bytes,omitempty"` // compressed bytes downloaded to hash
	// NarsNotHashed counts NARs CheckNarHashes could not check (a
	// compression it cannot decode, such as br).
	NarsNotHashed int `json:"nars_not_hashed,omitempty"`

	OrphanBytes int64 `json:"orphan_bytes"` // total of the orphan-nar problems
	// Recent counts unreferenced NARs and unfinished uploads younger than
	// the grace period: uploads in progress, most likely, not problems.
	Recent int `json:"recent_unreferenced"`
	// Dismissed counts problems the listing suggested but a direct lookup
	// disproved: the cache changed while it was read.
	Dismissed int `json:"dismissed"`

	Counts   map[Kind]int `json:"counts"`
	Problems []Problem    `json:"problems"`
}

// Clean reports whether no problem was found.
func (r *Report) Clean() bool { return len(r.Problems) == 0 }

func (r *Report) add(p Problem) {
	r.Problems = append(r.Problems, p)
}

// finish sorts the problems and counts them.
func (r *Report) finish() {
	slices.SortFunc(r.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)), strings.Compare(a.Key, b.Key), strings.Compare(a.Other, b.Other))
	})
	r.Counts = make(map[Kind]int)
	r.OrphanBytes = 0
	for _, p := range r.Problems {
		r.Counts[p.Kind]++
		if p.Kind == OrphanNar {
			r.OrphanBytes += p.Size
		}
	}
	if r.Problems == nil {
		r.Problems = []Problem{} // [] rather than null in JSON
	}
}

// WriteJSON writes r as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes a summary a person reads at a glance: what was
// checked, the number of problems of each kind, and the first max
// problems (all when max <= 0).
func (r *Report) WriteText(w io.Writer, max int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "cache:    %s\n", r.Store)
	fmt.Fprintf(&b, "checked:  %s narinfos, %s NARs (%s), %s objects in all, in %.1fs\n",
		count(int64(r.NarInfos)), count(r.Nars), bytesText(r.NarBytes), count(r.Objects), r.Duration)
	if r.NarsHashed > 0 || r.NarsNotHashed > 0 {
		fmt.Fprintf(&b, "hashed:   %s NARs (%s downloaded)", count(int64(r.NarsHashed)), bytesText(r.HashedBytes))
		if r.NarsNotHashed > 0 {
			fmt.Fprintf(&b, "; %d not hashed (compression not supported)", r.NarsNotHashed)
		}
		b.WriteString("\n")
	}
	if r.Clean() {
		b.WriteString("problems: none\n")
	} else {
		var parts []string
		for _, k := range Kinds {
			if n := r.Counts[k]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, k))
			}
		}
		fmt.Fprintf(&b, "problems: %d (%s)\n", len(r.Problems), strings.Join(parts, ", "))
		if r.OrphanBytes > 0 {
			fmt.Fprintf(&b, "orphans:  %s in NARs that no narinfo uses\n", bytesText(r.OrphanBytes))
		}
		shown := r.Problems
		if max > 0 && len(shown) > max {
			shown = shown[:max]
		}
		for _, p := range shown {
			fmt.Fprintf(&b, "  %-20s %s: %s\n", p.Kind, p.Key, p.Detail)
		}
		if len(shown) < len(r.Problems) {
			fmt.Fprintf(&b, "  ... and %d more (--json lists them all)\n", len(r.Problems)-len(shown))
		}
	}
	if r.Recent > 0 {
		fmt.Fprintf(&b, "note:     %d unreferenced NARs or unfinished uploads are younger than the grace period (uploads in progress?); not counted\n", r.Recent)
	}
	if r.Dismissed > 0 {
		fmt.Fprintf(&b, "note:     %d problems seen in the listing were gone on a direct lookup (the cache changed meanwhile)\n", r.Dismissed)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// count formats n with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// bytesText formats n bytes with a binary unit.
func bytesText(n int64) string {
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

func ageText(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
	return fmt.Sprintf("%d seconds", int(d/time.Second))
}
