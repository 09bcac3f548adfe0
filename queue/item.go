package queue

import (
	"encoding/binary"
	"fmt"
	"time"
)

// State is the lifecycle state of a queued item.
type State string

// The states of an item. Completed items leave the queue for the history.
const (
	// Pending items wait to be claimed once NextAttempt has passed.
	Pending State = "pending"
	// Leased items are being uploaded by a worker of this process.
	Leased State = "leased"
	// Failed items ran out of attempts or failed permanently; they wait for
	// Retry or a new Enqueue.
	Failed State = "failed"
)

// Item is one queued store path.
type Item struct {
	Path     string
	State    State
	Attempts int // failed attempts since the item last (re)entered the queue
	// EnqueuedAt is when the item last entered the queue: its first Enqueue,
	// or the Enqueue or Retry that brought it back from the failed list.
	EnqueuedAt time.Time
	// NextAttempt is when a pending item becomes due.
	NextAttempt time.Time
	// LeasedAt is when the current lease began; zero unless leased.
	LeasedAt time.Time
	// LastError is the cause given to the most recent Fail.
	LastError string
	// FailedAt is when the most recent Fail happened; zero if none.
	FailedAt time.Time
	// Permanent says the most recent Fail was permanent (retrying cannot
	// help until someone fixes something), as opposed to transient.
	Permanent bool
}

// Item encodings: v1 lacks FailedAt and Permanent, which v2 adds.
const (
	itemEncodingV1 = 1
	itemEncodingV2 = 2
)

const flagPermanent = 1

func (s State) code() byte {
	switch s {
	case Pending:
		return 1
	case Leased:
		return 2
	case Failed:
		return 3
	}
	return 0
}

func stateOf(code byte) (State, bool) {
	switch code {
	case 1:
		return Pending, true
	case 2:
		return Leased, true
	case 3:
		return Failed, true
	}
	return "", false
}

// encodeItem is the on-disk value of an item; the path is the key. The
// second byte is the state so scans can filter without a full decode.
func encodeItem(it Item) []byte {
	b := make([]byte, 0, 2+4*binary.MaxVarintLen64+len(it.LastError))
	b = append(b, itemEncodingV2, it.State.code())
	b = binary.AppendUvarint(b, uint64(it.Attempts))
	b = binary.AppendVarint(b, nanos(it.EnqueuedAt))
	b = binary.AppendVarint(b, nanos(it.NextAttempt))
	b = binary.AppendVarint(b, nanos(it.LeasedAt))
	b = binary.AppendVarint(b, nanos(it.FailedAt))
	var flags byte
	if it.Permanent {
		flags |= flagPermanent
	}
	b = append(b, flags)
	return append(b, it.LastError...)
}

func decodeItem(path string, b []byte) (Item, error) {
	if len(b) < 2 || (b[0] != itemEncodingV1 && b[0] != itemEncodingV2) {
		return Item{}, fmt.Errorf("item %s: unknown encoding", path)
	}
	st, ok := stateOf(b[1])
	if !ok {
		return Item{}, fmt.Errorf("item %s: unknown state %d", path, b[1])
	}
	it := Item{Path: path, State: st}
	rest := b[2:]
	attempts, n := binary.Uvarint(rest)
	if n <= 0 {
		return Item{}, fmt.Errorf("item %s: bad attempts", path)
	}
	it.Attempts = int(attempts)
	rest = rest[n:]
	times := []*time.Time{&it.EnqueuedAt, &it.NextAttempt, &it.LeasedAt}
	if b[0] == itemEncodingV2 {
		times = append(times, &it.FailedAt)
	}
	for _, dst := range times {
		v, n := binary.Varint(rest)
		if n <= 0 {
			return Item{}, fmt.Errorf("item %s: bad time", path)
		}
		*dst = fromNanos(v)
		rest = rest[n:]
	}
	if b[0] == itemEncodingV2 {
		if len(rest) == 0 {
			return Item{}, fmt.Errorf("item %s: missing flags", path)
		}
		it.Permanent = rest[0]&flagPermanent != 0
		rest = rest[1:]
	}
	it.LastError = string(rest)
	return it, nil
}

// nanos maps the zero time to 0 so that it survives a round trip.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// timeKey is an index key: big-endian nanoseconds (sign bit flipped so that
// byte order is time order) followed by the path or key it indexes.
func timeKey(t time.Time, suffix string) []byte {
	k := make([]byte, 8, 8+len(suffix))
	binary.BigEndian.PutUint64(k, uint64(nanos(t))^(1<<63))
	return append(k, suffix...)
}

func parseTimeKey(k []byte) (time.Time, string, error) {
	if len(k) < 8 {
		return time.Time{}, "", fmt.Errorf("index key %x too short", k)
	}
	n := int64(binary.BigEndian.Uint64(k) ^ (1 << 63))
	return fromNanos(n), string(k[8:]), nil
}

func u64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, v)
}
