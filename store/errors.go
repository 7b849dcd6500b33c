package store

import (
	"errors"

	"github.com/redis/go-redis/v9"
)

var (
	// ErrNotFound: no live session at the key (missing, expired or tombstoned).
	ErrNotFound = errors.New("not found")
	// ErrTombstoned: the key holds a tombstone, so writes to it are refused.
	ErrTombstoned = errors.New("session was destroyed")
	// errNoResult: a shared call (a combiner group, an MGET run) gave
	// one of its keys no result of its own.
	errNoResult = errors.New("shared call gave no result for this key")
)

// UpstreamReply reports whether err is an error reply from Redis itself
// (WRONGTYPE, NOSCRIPT…), as opposed to a network or timeout failure.
// Redis error replies go back to the client verbatim; other failures are the
// proxy's problem.
func UpstreamReply(err error) bool {
	// Checked first: errors.As allocates its target on every call, and
	// this runs on every read's success path (IsWrongType).
	if err == nil || err == redis.Nil {
		return false
	}
	var re redis.Error
	return errors.As(err, &re) && err != redis.Nil
}

// replyError is an error reply read raw (a native write's, native.go):
// Redis's words, an error reply to UpstreamReply as go-redis's own are.
type replyError string

func (e replyError) Error() string { return string(e) }

// RedisError makes replyError a redis.Error.
func (replyError) RedisError() {}
