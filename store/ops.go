package store

import (
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Helpers shared by the operations, each of which is in its own file
// with its script: write.go, destroy.go, expire.go, inspect.go, get.go,
// forward.go, cas.go, native.go, hash.go, lock.go, index.go, sweep.go.

// scriptOutcome decodes the {status[, value]} reply of the write and expire
// scripts.
func scriptOutcome(cmd *redis.Cmd) (Outcome, []byte, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return NotApplied, nil, err
	}
	var val []byte
	if len(vals) > 1 {
		val = asBytes(vals[1])
	}
	return outcome(vals[0], val)
}

// outcome maps a script's status code.
func outcome(status interface{}, val []byte) (Outcome, []byte, error) {
	return statusOutcome(asInt(status), val)
}

func statusOutcome(status int64, val []byte) (Outcome, []byte, error) {
	switch status {
	case -1:
		return NotApplied, nil, ErrTombstoned
	case 1:
		return Applied, val, nil
	case 2:
		return Deleted, val, nil
	case 3:
		return NotApplied, val, ErrCheckPrevious
	default:
		return NotApplied, val, nil
	}
}

func asInt(v interface{}) int64 {
	n, _ := v.(int64)
	return n
}

func asBytes(v interface{}) []byte {
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	return nil
}

// msArg renders a duration as whole milliseconds for a script argument,
// rounding up so a positive TTL never becomes 0 (which means "delete").
func msArg(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}
