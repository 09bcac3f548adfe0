package daemon

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// peer is who is on the other end of a connection.
type peer struct {
	uid, gid, pid int
}

// peerOf reads the connecting process's credentials from the kernel
// (SO_PEERCRED); they cannot be forged by the client.
func peerOf(conn net.Conn) (peer, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return peer{}, fmt.Errorf("daemon: not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{}, fmt.Errorf("daemon: peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return peer{}, fmt.Errorf("daemon: peer credentials: %w", err)
	}
	if cerr != nil {
		return peer{}, fmt.Errorf("daemon: peer credentials: %w", cerr)
	}
	return peer{uid: int(cred.Uid), gid: int(cred.Gid), pid: int(cred.Pid)}, nil
}

// access decides who may change the queue.
type access struct {
	self     int // the daemon's uid
	groupID  int // allowed group, -1 for none
	groupsOf func(uid int) ([]int, error)
}

func newAccess(allowGroup string) (access, error) {
	a := access{self: os.Getuid(), groupID: -1, groupsOf: supplementaryGroups}
	if allowGroup != "" {
		gid, err := lookupGroup(allowGroup)
		if err != nil {
			return a, err
		}
		a.groupID = gid
	}
	return a, nil
}

// mayWrite reports whether p may enqueue or retry.
func (a access) mayWrite(p peer) bool {
	if p.uid == 0 || p.uid == a.self {
		return true
	}
	if a.groupID < 0 {
		return false
	}
	if p.gid == a.groupID {
		return true
	}
	gids, err := a.groupsOf(p.uid)
	if err != nil {
		return false
	}
	for _, g := range gids {
		if g == a.groupID {
			return true
		}
	}
	return false
}

func supplementaryGroups(uid int) ([]int, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return nil, err
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, err
	}
	var gids []int
	for _, id := range ids {
		if g, err := strconv.Atoi(id); err == nil {
			gids = append(gids, g)
		}
	}
	return gids, nil
}
