package setup

import (
	"encoding/json"
	"fmt"
	"io"
)

// Status is the outcome of one check.
type Status string

// Statuses, from best to worst. Skipped means the check could not run
// because an earlier one failed or its input was not given; it does not
// change the exit status.
const (
	StatusOK      Status = "ok"
	StatusSkipped Status = "skipped"
	StatusWarning Status = "warning"
	StatusFailure Status = "failure"
)

func (s Status) rank() int {
	switch s {
	case StatusWarning:
		return 2
	case StatusFailure:
		return 3
	}
	return 0
}

// Check is the result of one check of Doctor.
type Check struct {
	// Name identifies the check ("credentials", "put", "public-read"...),
	// the same in every run.
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Message says what was found.
	Message string `json:"message"`
	// Fix says, in one sentence, what to do about a warning or a failure.
	Fix string `json:"fix,omitempty"`
}

// Report is the list of checks Doctor ran, in order.
type Report struct {
	Checks []Check `json:"checks"`
}

func (r *Report) add(name string, status Status, fix, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Status: status, Message: fmt.Sprintf(format, args...), Fix: fix})
}

func (r *Report) ok(name, format string, args ...any) { r.add(name, StatusOK, "", format, args...) }

func (r *Report) skip(name, format string, args ...any) {
	r.add(name, StatusSkipped, "", format, args...)
}

func (r *Report) warn(name, fix, format string, args ...any) {
	r.add(name, StatusWarning, fix, format, args...)
}

func (r *Report) fail(name, fix, format string, args ...any) {
	r.add(name, StatusFailure, fix, format, args...)
}

// Get returns the check named name, and whether the report has one.
func (r Report) Get(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Worst is the worst status of all checks (StatusOK for none).
func (r Report) Worst() Status {
	worst := StatusOK
	for _, c := range r.Checks {
		if c.Status.rank() > worst.rank() {
			worst = c.Status
		}
	}
	return worst
}

// ExitCode is 0 when every check passed (or was skipped), 1 when the worst
// is a warning, and 2 when any check failed.
func (r Report) ExitCode() int {
	switch r.Worst() {
	case StatusWarning:
		return 1
	case StatusFailure:
		return 2
	}
	return 0
}

// WriteText prints one line per check: "ok", "skip", "WARN" or "FAIL", the
// check's name, what was found and, for a warning or failure, the fix.
func (r Report) WriteText(w io.Writer) error {
	for _, c := range r.Checks {
		label := map[Status]string{StatusOK: "ok  ", StatusSkipped: "skip", StatusWarning: "WARN", StatusFailure: "FAIL"}[c.Status]
		line := fmt.Sprintf("%s  %-19s %s", label, c.Name, c.Message)
		if c.Fix != "" {
			line += " -- fix: " + c.Fix
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON prints the report as one JSON object: {"checks": [...],
// "status": worst, "exit_code": n}.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Checks   []Check `json:"checks"`
		Status   Status  `json:"status"`
		ExitCode int     `json:"exit_code"`
	}{r.Checks, r.Worst(), r.ExitCode()})
}
