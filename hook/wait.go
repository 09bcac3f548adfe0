package hook

import (
	"context"
	"time"
)

// MaxHold bounds WaitRequest.Hold: the longest a daemon holds a wait
// request before answering, well within the Server's RequestTimeout (30 s
// by default), which also bounds writing the answer.
const MaxHold = 10 * time.Second

// WaitRequest asks where the closures of Paths stand: a long poll. The
// daemon answers at once when every path is finished or when the state
// differs from Since; otherwise it holds the request until one of the
// paths finishes or Hold has passed, and answers then.
type WaitRequest struct {
	Paths []string
	// Hold is how long the daemon may hold the request (at most
	// MaxHold; 0 answers at once).
	Hold time.Duration
	// Since is the Version of the caller's previous answer, 0 for none.
	Since uint64
}

// Wait states of one path, in WaitPath.State.
const (
	// WaitPending: queued, not yet being uploaded; Attempts > 0 means it
	// failed before and waits for its retry (Reason says why).
	WaitPending = "pending"
	// WaitUploading: a worker is publishing its closure.
	WaitUploading = "uploading"
	// WaitSpooled: not queued yet, but spool files wait to be read and may
	// hold it.
	WaitSpooled = "spooled"
	// WaitPublished: its closure is in the cache (published now, or
	// already there, or left to an upstream cache).
	WaitPublished = "published"
	// WaitFailed: it is in the failed list; Reason says why.
	WaitFailed = "failed"
	// WaitDropped: it vanished from the store before it could be uploaded.
	WaitDropped = "dropped"
	// WaitUnknown: the daemon neither has it queued nor remembers
	// finishing it.
	WaitUnknown = "unknown"
)

// WaitPath is where one waited-for path stands.
type WaitPath struct {
	Path     string `json:"path"`
	State    string `json:"state"`
	Attempts int    `json:"attempts,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Uploaded and Skipped count the closure members published and found
	// present, once the path is published.
	Uploaded int `json:"uploaded,omitempty"`
	Skipped  int `json:"skipped,omitempty"`
}

// Finished reports whether the path's state is final: nothing more will
// happen to it unless someone pushes or retries it.
func (w WaitPath) Finished() bool {
	switch w.State {
	case WaitPublished, WaitFailed, WaitDropped, WaitUnknown:
		return true
	}
	return false
}

// WaitProgress adds up the closures of the waited-for paths: those being
// uploaded (from the uploader's plan) and those finished (from their
// records). Members shared by several paths may be counted once per path.
type WaitProgress struct {
	PathsTotal int   `json:"paths_total"`
	Uploaded   int   `json:"uploaded"`
	Present    int   `json:"present"`
	Failed     int   `json:"failed"`
	BytesTotal int64 `json:"bytes_total"` // NAR bytes to upload
	BytesDone  int64 `json:"bytes_done"`  // NAR bytes uploaded so far
	// Largest is the largest NAR of these closures being uploaded now.
	Largest *Transfer `json:"largest,omitempty"`
}

// WaitState is the answer to a WaitRequest.
type WaitState struct {
	// Version identifies the state of Paths (not of Progress); a later
	// answer with the same Version says nothing new about them.
	Version uint64 `json:"version"`
	// Done is true when every path is finished.
	Done     bool         `json:"done"`
	Paths    []WaitPath   `json:"paths"`
	Progress WaitProgress `json:"progress"`
	// Urgent is true when the daemon serves these paths ahead of its
	// backlog (the caller may change the queue).
	Urgent bool `json:"urgent,omitempty"`
}

// Wait asks where the closures of req.Paths stand, letting the daemon hold
// the request for up to req.Hold (see WaitRequest). Paths must be store
// paths; otherwise the request is refused with a *RefusedError. A caller
// allowed to change the queue also gets its paths served ahead of the
// backlog while it keeps asking.
func (c *Client) Wait(ctx context.Context, req WaitRequest) (*WaitState, error) {
	resp, err := c.do(ctx, request{Op: opWait, Paths: req.Paths, HoldMillis: req.Hold.Milliseconds(), Since: req.Since})
	if err != nil {
		return nil, err
	}
	if resp.Wait == nil {
		return nil, &Error{Message: "the daemon sent no wait state"}
	}
	return resp.Wait, nil
}
