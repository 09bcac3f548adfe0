package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/nixs3q/nixs3q/metrics"
	"github.com/nixs3q/nixs3q/queue"
)

// A connection that sends nothing, one that sends half a request and one
// left idle after a request are all closed by the metrics server after its
// timeouts, instead of being held for ever.
func TestMetricsServerTimeouts(t *testing.T) {
	m := metrics.New(func() (queue.Stats, error) { return queue.Stats{}, nil })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	to := metricsTimeouts{readHeader: 200 * time.Millisecond, read: 300 * time.Millisecond,
		write: time.Second, idle: 300 * time.Millisecond}
	stop, err := serveMetricsWith(addr, m, zaptest.NewLogger(t), to)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	closedWithin := func(name string, c net.Conn, d time.Duration) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(d))
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadByte(); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Errorf("%s: connection still open after %s", name, d)
				}
				return
			}
		}
	}
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	half, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	fmt.Fprint(half, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprint(idle, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics request: %v %v", resp, err)
	}
	body := new(strings.Builder)
	if _, err := bufio.NewReader(resp.Body).WriteTo(body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	closedWithin("silent", silent, 3*time.Second)
	closedWithin("half a request", half, 3*time.Second)
	closedWithin("idle after a request", idle, 3*time.Second)
}
