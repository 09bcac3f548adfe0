package hook

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// ErrTimeout is returned when the daemon does not answer before the deadline.
var ErrTimeout = errors.New("hook: timed out")

// unixConn is a blocking Unix stream socket driven with plain system calls,
// with the deadline enforced by the kernel (SO_RCVTIMEO, SO_SNDTIMEO).
// Unlike the net package it needs no poller goroutines and no cgo resolver,
// which is what keeps the hook's start-to-exit time near that of an empty
// program. It is not safe for concurrent use.
type unixConn struct {
	fd       int
	deadline time.Time // zero: none
}

func dialUnix(path string, deadline time.Time) (*unixConn, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	c := &unixConn{fd: fd, deadline: deadline}
	for {
		if err = c.arm(syscall.SO_SNDTIMEO); err != nil {
			break
		}
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		if err == syscall.EAGAIN || err == syscall.EINPROGRESS {
			return nil, ErrTimeout
		}
		return nil, os.NewSyscallError("connect", err)
	}
	return c, nil
}

// arm sets the kernel timeout opt to the time left until the deadline.
func (c *unixConn) arm(opt int) error {
	var tv syscall.Timeval
	if !c.deadline.IsZero() {
		left := time.Until(c.deadline)
		if left <= 0 {
			return ErrTimeout
		}
		if left < time.Microsecond {
			left = time.Microsecond
		}
		tv = syscall.NsecToTimeval(left.Nanoseconds())
	}
	return syscall.SetsockoptTimeval(c.fd, syscall.SOL_SOCKET, opt, &tv)
}

func (c *unixConn) Read(p []byte) (int, error) {
	for {
		if err := c.arm(syscall.SO_RCVTIMEO); err != nil {
			return 0, err
		}
		n, err := syscall.Read(c.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, ErrTimeout
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (c *unixConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		if err := c.arm(syscall.SO_SNDTIMEO); err != nil {
			return written, err
		}
		n, err := syscall.Write(c.fd, p[written:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return written, ErrTimeout
		case err != nil:
			return written, os.NewSyscallError("write", err)
		}
		written += n
	}
	return written, nil
}

func (c *unixConn) Close() error { return syscall.Close(c.fd) }
