package daemon

import (
	"os"
	"os/user"
	"strconv"

	"github.com/nixs3q/nixs3q/hook"
)

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
func (a access) mayWrite(p hook.Peer) bool {
	if p.UID == 0 || p.UID == a.self {
		return true
	}
	if a.groupID < 0 {
		return false
	}
	if p.GID == a.groupID {
		return true
	}
	gids, err := a.groupsOf(p.UID)
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
