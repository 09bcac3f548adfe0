package s3_test

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nixs3q/nixs3q/uploader"
	"github.com/nixs3q/nixs3q/uploader/s3"
)

// lifecycleServer answers GET and PUT ?lifecycle like S3 and records what
// was put.
type lifecycleServer struct {
	mu      sync.Mutex
	current string // the configuration's XML, "" for none
	status  int    // forced status of every answer, 0 for normal
	puts    []string
}

func (l *lifecycleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !strings.Contains(r.URL.RawQuery, "lifecycle") {
		http.Error(w, "unexpected request "+r.Method+" "+r.URL.String(), http.StatusBadRequest)
		return
	}
	if l.status != 0 {
		w.WriteHeader(l.status)
		io.WriteString(w, `<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
		return
	}
	switch r.Method {
	case http.MethodGet:
		if l.current == "" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `<Error><Code>NoSuchLifecycleConfiguration</Code><Message>none</Message></Error>`)
			return
		}
		io.WriteString(w, l.current)
	case http.MethodPut:
		body, _ := io.ReadAll(r.Body)
		l.puts = append(l.puts, string(body))
		l.current = string(body)
	}
}

type lifecycleXML struct {
	Rules []struct {
		ID     string `xml:"ID"`
		Status string `xml:"Status"`
		Filter struct {
			Prefix string `xml:"Prefix"`
		} `xml:"Filter"`
		Expiration *struct {
			Days int `xml:"Days"`
		} `xml:"Expiration"`
		Abort *struct {
			Days int `xml:"DaysAfterInitiation"`
		} `xml:"AbortIncompleteMultipartUpload"`
	} `xml:"Rule"`
}

func TestEnsureAbortIncompleteRule(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	ctx := context.Background()
	const existing = `<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ID>logs</ID>` +
		`<Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>30</Days></Expiration></Rule></LifecycleConfiguration>`

	for _, tc := range []struct {
		name, current string
		wantRules     int
	}{
		{"no configuration", "", 1},
		{"another rule kept", existing, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &lifecycleServer{current: tc.current}
			srv := httptest.NewServer(l)
			defer srv.Close()
			a := newStore(t, testConfig(srv.URL)).Admin()
			changed, err := a.EnsureAbortIncompleteRule(ctx, 7)
			if err != nil || !changed || len(l.puts) != 1 {
				t.Fatalf("EnsureAbortIncompleteRule = %v, %v after %d puts", changed, err, len(l.puts))
			}
			var got lifecycleXML
			if err := xml.Unmarshal([]byte(l.puts[0]), &got); err != nil {
				t.Fatalf("put body %q: %v", l.puts[0], err)
			}
			if len(got.Rules) != tc.wantRules {
				t.Fatalf("put %d rules, want %d: %s", len(got.Rules), tc.wantRules, l.puts[0])
			}
			last := got.Rules[len(got.Rules)-1]
			if last.ID != s3.AbortRuleID || last.Status != "Enabled" || last.Abort == nil || last.Abort.Days != 7 || last.Filter.Prefix != "" {
				t.Errorf("added rule %+v", last)
			}
			if tc.wantRules == 2 && (got.Rules[0].ID != "logs" || got.Rules[0].Filter.Prefix != "logs/" || got.Rules[0].Expiration == nil || got.Rules[0].Expiration.Days != 30) {
				t.Errorf("existing rule changed: %+v", got.Rules[0])
			}
			rules, err := a.Lifecycle(ctx)
			if err != nil || len(rules) != tc.wantRules || rules[len(rules)-1].AbortIncompleteDays != 7 {
				t.Errorf("Lifecycle after the change = %+v, %v", rules, err)
			}

			// Once there, nothing changes.
			changed, err = a.EnsureAbortIncompleteRule(ctx, 7)
			if err != nil || changed || len(l.puts) != 1 {
				t.Fatalf("second EnsureAbortIncompleteRule = %v, %v after %d puts", changed, err, len(l.puts))
			}
		})
	}

	l := &lifecycleServer{status: http.StatusForbidden}
	srv := httptest.NewServer(l)
	defer srv.Close()
	a := newStore(t, testConfig(srv.URL)).Admin()
	if _, err := a.EnsureAbortIncompleteRule(ctx, 7); !errors.Is(err, uploader.ErrAccessDenied) {
		t.Errorf("denied: %v, want uploader.ErrAccessDenied", err)
	}
	if _, err := a.EnsureAbortIncompleteRule(ctx, 0); err == nil {
		t.Error("0 days accepted")
	}
}
