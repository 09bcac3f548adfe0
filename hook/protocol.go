package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the protocol version a client sends in every request. The daemon
// refuses versions it does not know with a clear error.
const Version = 1

// MaxMessageSize bounds one request or response line, newline included.
const MaxMessageSize = 4 << 20

// MaxRefusals bounds the refusals one answer lists, so that the answer to a
// request with many invalid paths stays far below MaxMessageSize.
const MaxRefusals = 100

// Defaults shared by the hook, the CLI and the daemon.
const (
	DefaultSocket   = "/run/nixs3q/nixs3q.sock"
	DefaultStateDir = "/var/lib/nixs3q"
	SocketEnv       = "NIXS3Q_SOCKET"
	StateDirEnv     = "NIXS3Q_STATE_DIR"
)

// Operations a request may ask for. They appear only on the wire: callers
// use the Client's methods, the daemon implements Handler.
const (
	opEnqueue = "enqueue" // queue paths durably; needs write access
	opRetry   = "retry"   // move failed paths (all when none named) back to pending; needs write access
	opStatus  = "status"  // report the queue; open to every local user
	opPing    = "ping"    // check the daemon answers
	opWait    = "wait"    // report where the closures of paths stand, holding the answer until one finishes; open to every local user
)

// request is one client message on the wire.
type request struct {
	Version int      `json:"v"`
	Op      string   `json:"op"`
	Paths   []string `json:"paths,omitempty"`
	// Drv is the derivation the paths were built from, when known: the
	// daemon then also queues the build (BuildItem), for its realisations
	// and log. A request may carry a Drv and no paths (a content-addressed
	// build whose output paths the hook could not know).
	Drv string `json:"drv,omitempty"`
	// Source says who sent the request: "hook", "push", "spool".
	Source string `json:"source,omitempty"`
	// HoldMillis and Since belong to a wait (see WaitRequest).
	HoldMillis int64  `json:"hold_ms,omitempty"`
	Since      uint64 `json:"since,omitempty"`
}

// response is the daemon's answer to one request on the wire. OK is false
// when the request changed nothing; Error then says why and Code (absent
// from daemons older than the typed client) says what kind of refusal it is.
type response struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
	// Refused lists the invalid paths of a refused enqueue, the first
	// MaxRefusals of them. An enqueue with any invalid path is refused
	// whole, so that bad input changes nothing.
	Refused []Refusal `json:"refused,omitempty"`
	// RefusedCount is the number of invalid paths of a refused enqueue,
	// which may exceed len(Refused).
	RefusedCount  int        `json:"refused_count,omitempty"`
	Added         int        `json:"added,omitempty"`
	AlreadyQueued int        `json:"already_queued,omitempty"`
	Requeued      int        `json:"requeued,omitempty"`
	Retried       int        `json:"retried,omitempty"`
	Status        *Status    `json:"status,omitempty"`
	Wait          *WaitState `json:"wait,omitempty"`
}

// Error codes in a response. They let the client return typed errors.
const (
	codePermission = "permission"
	codeVersion    = "version"
	codeMalformed  = "malformed"
	codeTooLarge   = "too-large"
	codeRefused    = "refused"
	codeBusy       = "busy"
)

// EnqueueRequest asks the daemon to queue store paths.
type EnqueueRequest struct {
	Paths []string
	// Drv is the derivation the paths were built from, when known: the
	// daemon then also queues the build (BuildItem), for its realisations
	// and log. Paths may then be empty.
	Drv string
	// Source says who asks: "hook", "push", "spool" (for logs).
	Source string
}

// EnqueueResult counts what an enqueue did with its paths.
type EnqueueResult struct {
	Added         int // new in the queue
	AlreadyQueued int // pending or in flight already
	Requeued      int // failed before, now pending again
}

// RetryResult says what a retry did.
type RetryResult struct {
	Retried int // failed items moved back to pending
}

// Refusal names a path the daemon would not queue, and why.
type Refusal struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Status is the daemon's view of its queue and uploads.
type Status struct {
	Store     string `json:"store"`
	PublicKey string `json:"public_key,omitempty"` // of the key narinfos are signed with
	Pending   int    `json:"pending"`
	InFlight  int    `json:"in_flight"`
	Spooled   int    `json:"spooled"`   // spool files not yet ingested
	SpoolBad  int    `json:"spool_bad"` // unreadable spool files moved to spool/bad/
	// SpoolProblem says why the daemon does not read the spool at all (a
	// directory others may write to); its files, counted in Spooled, stay
	// unread until it is fixed. Empty when the spool is read.
	SpoolProblem  string `json:"spool_problem,omitempty"`
	Failed        int    `json:"failed"`
	Uploaded      int64  `json:"uploaded"`
	UploadedBytes int64  `json:"uploaded_bytes"`
	Skipped       int64  `json:"skipped"`
	Dropped       int64  `json:"dropped"`
	Completed     int64  `json:"completed"`
	// Excluded counts queued paths the upload filters left out, and
	// HeldBack queued paths not published because they refer to one.
	Excluded int64 `json:"excluded"`
	HeldBack int64 `json:"held_back"`
	// Realisations and Logs count what builds published besides paths.
	Realisations         int64          `json:"realisations"`
	Logs                 int64          `json:"logs"`
	OldestPendingSeconds float64        `json:"oldest_pending_seconds"`
	ThroughputBytesSec   float64        `json:"throughput_bytes_per_second"`
	Failures             []Failure      `json:"failures"`
	Active               []ActiveItem   `json:"in_flight_items"`
	Uploading            []Transfer     `json:"uploading"`
	Recent               []HistoryEntry `json:"recent,omitempty"`
	// LastGC is the last garbage collection of the cache, as its report
	// in the cache says; nil when none ran or it was not read yet.
	LastGC *GCSummary `json:"last_gc,omitempty"`
}

// GCSummary is the gist of the last `nixs3q gc` run on the cache.
type GCSummary struct {
	Finished       time.Time `json:"finished"`
	Seconds        float64   `json:"seconds"`
	DeletedObjects int64     `json:"deleted_objects"`
	DeletedBytes   int64     `json:"deleted_bytes"`
	KeptObjects    int64     `json:"kept_objects"`
	KeptBytes      int64     `json:"kept_bytes"`
	Error          string    `json:"error,omitempty"`
}

// Failure is an item in the failed list.
type Failure struct {
	Path      string `json:"path"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
}

// ActiveItem is a queued root path a worker is processing.
type ActiveItem struct {
	Path     string    `json:"path"`
	Attempts int       `json:"attempts"`
	Since    time.Time `json:"since"`
}

// Transfer is one NAR being uploaded now.
type Transfer struct {
	Path    string    `json:"path"`
	NarSize uint64    `json:"nar_size"`
	Read    int64     `json:"read"`
	Started time.Time `json:"started"`
}

// HistoryEntry is a recently finished root path.
type HistoryEntry struct {
	Path     string    `json:"path"`
	Finished time.Time `json:"finished"`
	Result   string    `json:"result"`
	Uploaded int       `json:"uploaded"`
	Skipped  int       `json:"skipped"`
	Bytes    int64     `json:"bytes"`
	Excluded int       `json:"excluded,omitempty"`
	HeldBack int       `json:"held_back,omitempty"`
	// Detail says more, e.g. which excluded path held the item back.
	Detail string `json:"detail,omitempty"`
}

// ErrTooLarge is returned for a message longer than MaxMessageSize.
var ErrTooLarge = errors.New("hook: message exceeds the size limit")

// encodeLine marshals v as one protocol line (JSON plus newline).
func encodeLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("hook: encode: %w", err)
	}
	if len(b)+1 > MaxMessageSize {
		return nil, ErrTooLarge
	}
	return append(b, '\n'), nil
}
